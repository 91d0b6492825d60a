"""Every word the advisor reads, in English and French; ``t(lang, key, **values)``."""

from __future__ import annotations

from typing import Final

LANGS: Final = {"English": "en", "Français": "fr"}

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "# Credit advisor dashboard",
        "intro": "Look up a client to see the decision, the reasons behind it and how the "
        "client compares with others. Figures come from the scoring service.",
        "sign_out": "Sign out",
        "lang": "Language",
        "client_id": "Client number",
        "lookup": "Look up",
        "recent": "Recent applications",
        "recent_info": "Pick a recently scored client",
        "refresh": "Refresh the list",
        "tab_decision": "Decision",
        "tab_profile": "Client information",
        "tab_compare": "Compared with others",
        "tab_whatif": "What-if simulation",
        "tab_model": "About the model",
        "empty": "No client selected yet: enter a client number and press *Look up*.",
        "loading": "Loading client {client_id}…",
        "loaded": "Client {client_id} loaded.",
        "granted": "GRANTED",
        "refused": "REFUSED",
        "decision_line": "**{mark} {word}**: probability of default **{p}**, {gap} points "
        "{side} the threshold of {thr}.",
        "below": "below",
        "above": "above",
        "at": "at",
        "decision_meta": "Model version {version} · audit reference `{decision_id}`",
        "raising": "Reasons that raise the risk",
        "lowering": "Reasons that lower the risk",
        "none": "None among the main factors.",
        "counterfactual": "What would change the decision",
        "gauge_title": "Probability of default for client {client_id}",
        "gauge_alt": "Gauge: the probability of default is {p}; the threshold, marked by a "
        "black line, is {thr}, so the application is {word}.",
        "waterfall_title": "Main factors of the score",
        "waterfall_x": "Effect on the risk score (log-odds; right = riskier)",
        "waterfall_start": "Average client",
        "waterfall_others": "All other factors",
        "waterfall_end": "This client",
        "waterfall_alt": "Waterfall chart: starting from the average client, {up} factors "
        "push the risk up and {down} push it down; the strongest is {top}.",
        "feature": "Feature to compare",
        "years": "years",
        "feature_x": "Horizontal axis",
        "feature_y": "Vertical axis",
        "repaid": "Repaid",
        "defaulted": "Defaulted",
        "client": "This client",
        "dist_title": "{label}: all clients by outcome",
        "dist_y": "Share of clients in the group",
        "dist_alt": "Bar chart of {label} for the {n} clients the model learnt from, repaid "
        "(blue) and defaulted (orange, hatched); this client's value {value} is marked.",
        "dist_missing": "this client's value is not known",
        "scatter_title": "{x} and {y}: the {k} most similar clients",
        "scatter_alt": "Scatter plot of {x} against {y} for the {k} clients most similar to "
        "this one (circles; {d} of them defaulted, who is not shown); this client is the "
        "black star.",
        "similar": "Similar clients",
        "scatter_note": "The service publishes one-feature distributions, not pairs of values, "
        "so this view shows the most similar clients (as found by the scoring service) rather "
        "than the whole population.",
        "scatter_none": "Neither value is known for these clients.",
        "neighbours_title": "Most similar clients",
        "neighbours_summary": "Of the {k} most similar clients, {d} defaulted ({rate}).",
        "col_client": "Client",
        "col_similarity": "Distance (lower = more similar)",
        "col_outcome": "Outcome",
        "col_probability": "Probability of default",
        "whatif_intro": "Change the application and simulate. **This is a simulation**: it "
        "is not a decision and is never recorded as one.",
        "income": "Annual income",
        "credit": "Credit amount",
        "annuity": "Annuity",
        "goods": "Price of the goods",
        "term": "Term (credit ÷ annuity); changing it recomputes the annuity",
        "children": "Number of children",
        "simulate": "Simulate",
        "reset": "Reset to the client's values",
        "sim_banner": "SIMULATION, not a decision",
        "sim_change": "The simulated probability of default is **{new}** (the real score "
        "is {old}), {word}.",
        "sim_none": "Look up a client first.",
        "reset_done": "Fields reset to the client's values.",
        "model_title": "Model {name}, version {version}",
        "model_text": "A client is **refused when the probability of default is {thr} or "
        "more**. The threshold was chosen so that a missed default costs {fn} times as much "
        "as a wrongly refused good client. The model uses {n} pieces of information.",
        "metrics": "Measured quality on clients it did not learn from",
        "importance_title": "What matters most to the model overall",
        "importance_x": "Average effect on the score",
        "importance_alt": "Bar chart of the {n} most influential factors; the first is {top}.",
        "importance_none": "Global importance is unavailable while the explanation service "
        "is away.",
        "unavailable_part": "This part could not be loaded: {message}",
    },
    "fr": {
        "title": "# Tableau de bord du conseiller crédit",
        "intro": "Recherchez un client pour voir la décision, ses raisons et la comparaison "
        "avec les autres clients. Les chiffres viennent du service de scoring.",
        "sign_out": "Se déconnecter",
        "lang": "Langue",
        "client_id": "Numéro de client",
        "lookup": "Rechercher",
        "recent": "Demandes récentes",
        "recent_info": "Choisir un client évalué récemment",
        "refresh": "Actualiser la liste",
        "tab_decision": "Décision",
        "tab_profile": "Informations client",
        "tab_compare": "Comparaison",
        "tab_whatif": "Simulation",
        "tab_model": "À propos du modèle",
        "empty": "Aucun client choisi : saisissez un numéro de client et cliquez sur *Rechercher*.",
        "loading": "Chargement du client {client_id}…",
        "loaded": "Client {client_id} chargé.",
        "granted": "ACCORDÉ",
        "refused": "REFUSÉ",
        "decision_line": "**{mark} {word}** : probabilité de défaut **{p}**, {gap} points "
        "{side} du seuil de {thr}.",
        "below": "en dessous",
        "above": "au-dessus",
        "at": "au niveau",
        "decision_meta": "Version du modèle {version} · référence d'audit `{decision_id}`",
        "raising": "Ce qui augmente le risque",
        "lowering": "Ce qui diminue le risque",
        "none": "Aucun parmi les principaux facteurs.",
        "counterfactual": "Ce qui changerait la décision",
        "gauge_title": "Probabilité de défaut du client {client_id}",
        "gauge_alt": "Jauge : la probabilité de défaut est de {p} ; le seuil, marqué d'un "
        "trait noir, est de {thr} : la demande est {word}.",
        "waterfall_title": "Principaux facteurs du score",
        "waterfall_x": "Effet sur le score de risque (log-odds ; à droite = plus risqué)",
        "waterfall_start": "Client moyen",
        "waterfall_others": "Tous les autres facteurs",
        "waterfall_end": "Ce client",
        "waterfall_alt": "Graphique en cascade : depuis le client moyen, {up} facteurs "
        "augmentent le risque et {down} le diminuent ; le plus fort est {top}.",
        "feature": "Information à comparer",
        "years": "ans",
        "feature_x": "Axe horizontal",
        "feature_y": "Axe vertical",
        "repaid": "Remboursé",
        "defaulted": "Défaut",
        "client": "Ce client",
        "dist_title": "{label} : tous les clients selon l'issue",
        "dist_y": "Part des clients du groupe",
        "dist_alt": "Histogramme de {label} pour les {n} clients d'apprentissage du modèle, "
        "remboursés (bleu) et en défaut (orange, hachuré) ; la valeur du client, {value}, "
        "est marquée.",
        "dist_missing": "la valeur de ce client n'est pas connue",
        "scatter_title": "{x} et {y} : les {k} clients les plus proches",
        "scatter_alt": "Nuage de points de {x} et {y} pour les {k} clients les plus proches "
        "(cercles ; {d} en défaut, sans dire lesquels) ; ce client est l'étoile noire.",
        "similar": "Clients proches",
        "scatter_note": "Le service publie des distributions par information, pas des paires "
        "de valeurs : cette vue montre donc les clients les plus proches (trouvés par le "
        "service de scoring) et non toute la population.",
        "scatter_none": "Aucune de ces valeurs n'est connue pour ces clients.",
        "neighbours_title": "Clients les plus proches",
        "neighbours_summary": "Sur les {k} clients les plus proches, {d} ont fait défaut ({rate}).",
        "col_client": "Client",
        "col_similarity": "Distance (plus bas = plus proche)",
        "col_outcome": "Issue",
        "col_probability": "Probabilité de défaut",
        "whatif_intro": "Modifiez la demande puis simulez. **Ceci est une simulation** : ce "
        "n'est pas une décision et elle n'est jamais enregistrée comme telle.",
        "income": "Revenu annuel",
        "credit": "Montant du crédit",
        "annuity": "Annuité",
        "goods": "Prix du bien",
        "term": "Durée (crédit ÷ annuité) ; la modifier recalcule l'annuité",
        "children": "Nombre d'enfants",
        "simulate": "Simuler",
        "reset": "Revenir aux valeurs du client",
        "sim_banner": "SIMULATION, pas une décision",
        "sim_change": "La probabilité de défaut simulée est de **{new}** (score réel : "
        "{old}) : {word}.",
        "sim_none": "Recherchez d'abord un client.",
        "reset_done": "Valeurs du client rétablies.",
        "model_title": "Modèle {name}, version {version}",
        "model_text": "Un client est **refusé quand la probabilité de défaut atteint {thr} "
        "ou plus**. Le seuil tient compte du fait qu'un défaut non détecté coûte {fn} fois "
        "plus cher qu'un bon client refusé à tort. Le modèle utilise {n} informations.",
        "metrics": "Qualité mesurée sur des clients non vus à l'apprentissage",
        "importance_title": "Ce qui compte le plus pour le modèle",
        "importance_x": "Effet moyen sur le score",
        "importance_alt": "Diagramme en barres des {n} facteurs les plus influents ; le "
        "premier est {top}.",
        "importance_none": "L'importance globale est indisponible pendant l'absence du "
        "service d'explication.",
        "unavailable_part": "Cette partie n'a pas pu être chargée : {message}",
    },
}

# Worded failures (client.GatewayError.kind); the gateway's own detail is never shown.
ERRORS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "not_found": "No client with number {client_id} was found. Check the number.",
        "invalid": "The service did not accept these values: {detail}",
        "invalid_id": "Enter a client number (a positive whole number).",
        "unavailable": "The scoring service is unavailable right now. Please try again in "
        "a minute.",
        "timeout": "The scoring service took too long to answer. Please try again.",
        "auth": "The dashboard is not authorised by the scoring service. Contact support.",
        "rate_limited": "Too many requests in a short time. Please wait a moment.",
        "error": "Something went wrong. Please try again; if it persists, contact support.",
    },
    "fr": {
        "not_found": "Aucun client n° {client_id} n'a été trouvé. Vérifiez le numéro.",
        "invalid": "Le service n'a pas accepté ces valeurs : {detail}",
        "invalid_id": "Saisissez un numéro de client (un entier positif).",
        "unavailable": "Le service de scoring est indisponible pour le moment. Réessayez "
        "dans une minute.",
        "timeout": "Le service de scoring a mis trop de temps à répondre. Réessayez.",
        "auth": "Le tableau de bord n'est pas autorisé par le service de scoring. Contactez "
        "le support.",
        "rate_limited": "Trop de demandes en peu de temps. Patientez un instant.",
        "error": "Une erreur est survenue. Réessayez ; si elle persiste, contactez le support.",
    },
}

METRIC_NAMES: Final[dict[str, dict[str, str]]] = {
    "en": {"auc": "AUC (ranking quality, 0.5 = chance, 1 = perfect)",
           "roc_auc": "AUC (ranking quality, 0.5 = chance, 1 = perfect)",
           "recall": "Share of defaults caught", "precision": "Refusals that were defaults",
           "accuracy": "Correct decisions", "brier": "Brier score (lower is better)",
           "business_cost": "Average cost per client"},
    "fr": {"auc": "AUC (qualité du classement ; 0,5 = hasard, 1 = parfait)",
           "roc_auc": "AUC (qualité du classement ; 0,5 = hasard, 1 = parfait)",
           "recall": "Part des défauts détectés", "precision": "Refus qui étaient des défauts",
           "accuracy": "Décisions correctes", "brier": "Score de Brier (plus bas = mieux)",
           "business_cost": "Coût moyen par client"},
}  # fmt: skip


def t(lang: str, key: str, **values: object) -> str:
    text = TEXTS.get(lang, TEXTS["en"]).get(key) or TEXTS["en"][key]
    return text.format(**values) if values else text


def error_text(lang: str, kind: str, **values: object) -> str:
    table = ERRORS.get(lang, ERRORS["en"])
    text = table.get(kind, table["error"])
    try:
        return text.format(**values)
    except KeyError:  # a message needing a value the caller does not have
        return table["error"]


def percent(value: float, lang: str, digits: int = 1) -> str:
    text = f"{100 * value:.{digits}f}"
    return f"{text.replace('.', ',')} %" if lang == "fr" else f"{text}%"
