"""Every word the advisor reads, in English and French; ``t(lang, key, **values)``."""

from __future__ import annotations

from typing import Final

from services.ui import formats

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
        "empty": "No client selected yet: enter a client number and press “Look up”.",
        "loading": "Loading client {client_id}…",
        "loaded": "Client {client_id} loaded.",
        "granted": "GRANTED",
        "refused": "REFUSED",
        "outcome_granted": "granted",
        "outcome_refused": "refused",
        "review": "REFER TO AN UNDERWRITER",  # within the review band of the threshold
        "outcome_review": "referred to an underwriter",
        "decision_line": "**{mark} {word}**: probability of default **{p}**, {gap} {side} "
        "the threshold of {thr} (refused at {thr} or more).",
        "decision_line_at": "**{mark} {word}**: probability of default **{p}**, at the "
        "threshold of {thr} (refused at {thr} or more).",
        "below": "below",
        "above": "above",
        "decision_meta": "Model version {version} · audit reference `{decision_id}`",
        "raising": "Reasons that raise the risk",
        "lowering": "Reasons that lower the risk",
        "none": "None among the main factors.",
        "counterfactual": "What would change the decision",
        "gauge_title": "Probability of default for client {client_id}",
        "gauge_alt": "Gauge: the probability of default is {p}; the threshold, marked by a "
        "black line, is {thr}, so the application is {word}.",
        "waterfall_title": "Main factors of the score",
        "waterfall_x": "Probability of default (%); each bar: change in percentage points",
        "waterfall_calibration": "Adjustment to observed default rates",
        "waterfall_start": "Average client",
        "waterfall_others": "All other factors",
        "waterfall_end": "This client",
        "waterfall_alt": "Waterfall chart: from {start} for the average client, {up} of the "
        "main factors raise the probability of default and {down} lower it, to {end} for "
        "this client; the strongest is {top} ({effect}).",
        "feature": "Feature to compare",
        "years": "years",
        "days": "days",
        "yes": "yes",
        "no": "no",
        "not_known": "not known",
        "feature_x": "Horizontal axis",
        "feature_y": "Vertical axis",
        "repaid": "Repaid",
        "defaulted": "Defaulted",
        "hidden": "Outcome not shown",
        "hidden_alt_one": "The outcome of {n} client (grey) is not shown: too few clients "
        "to show it without telling one client's outcome.",
        "hidden_alt_other": "The outcome of {n} clients (grey) is not shown: too few clients "
        "to show it without telling one client's outcome.",
        "client": "This client",
        "dist_title": "{label}: all clients by outcome",
        "dist_y": "Share of clients in the group",
        "dist_alt": "Bar chart of {label} for the {n} clients the model learnt from, repaid "
        "(blue) and defaulted (orange, hatched); this client's value, {value}, is marked.",
        "dist_alt_missing": "Bar chart of {label} for the {n} clients the model learnt from, "
        "repaid (blue) and defaulted (orange, hatched); this client's value is not known.",
        "scatter_title": "{x} and {y}: the {k} most similar clients",
        "scatter_alt": "Scatter plot of {x} against {y} for the {k} clients most similar to "
        "this one (circles; which of them defaulted is not shown); this client is the "
        "black star.",
        "similar": "Similar clients",
        "scatter_note": "The service publishes one-feature distributions, not pairs of values, "
        "so this view shows the most similar clients (as found by the scoring service) rather "
        "than the whole population.",
        "scatter_none": "Neither value is known for these clients.",
        "neighbours_title": "Most similar clients",
        "neighbours_summary_one": "Of the {k} most similar clients, {d} defaulted ({rate}).",
        "neighbours_summary_other": "Of the {k} most similar clients, {d} defaulted ({rate}).",
        "col_client": "Client",
        "col_similarity": "Distance (lower = more similar)",
        "col_outcome": "Outcome",
        "col_probability": "Probability of default",
        "whatif_intro": "Change the application and simulate. **This is a simulation**: it "
        "is not a decision and is never recorded as one.",
        "income": "Annual income ({cur})",
        "credit": "Credit amount ({cur})",
        "annuity": "Annuity ({cur})",
        "goods": "Price of the goods ({cur})",
        "term": "Term in months (credit ÷ annuity); changing it recomputes the annuity",
        "children": "Number of children",
        "simulate": "Simulate",
        "reset": "Reset to the client's values",
        "sim_banner": "SIMULATION, not a decision",
        "sim_change": "The simulated probability of default is **{new}** (the real score "
        "is {old}); the application would be {word}.",
        "sim_none": "Look up a client first.",
        "reset_done": "Fields reset to the client's values.",
        "model_title": "Model {name}, version {version}",
        "model_text": "A client is **refused when the probability of default is {thr} or "
        "more**. The threshold was chosen so that a missed default costs {fn} times as much "
        "as a wrongly refused good client. The model uses {n} pieces of information.",
        "metrics": "Measured quality on clients it did not learn from",
        "importance_title": "What matters most to the model overall",
        "importance_x": "Share of the average effect of these factors",
        "importance_alt": "Bar chart of the {n} most influential factors; the first is {top}.",
        "importance_none": "Global importance is unavailable while the explanation service "
        "is away.",
        "unavailable_part": "This part could not be loaded: {message}",
        "page_title": "Credit advisor dashboard",
        "sign_in": "Advisor sign-in",
        "main_label": "Client look-up and decision",
        "tabs_label": "Views of the client",
        "field_range": "Enter a number from {low} to {high}.",
        "field_required": "Enter a value.",
        "fields_invalid": "Some values are outside what the service accepts; see the "
        "messages under the fields.",
        "cf_found": "Changing {changes} would bring the probability of default to {p}, "
        "under the threshold of {thr}, and the application would be granted.",
        "cf_change": "{label} from {old} to {new}",
        "cf_and": " and ",
        "cf_none": "No change to the credit amount, annuity or goods price within realistic "
        "limits brings the probability of default under the threshold of {thr}.",
        "recent_item": "{cid} · {word} · {when}",
        "chart_name": "Chart: {title}",
        "factors_title": "The client's principal factors",
        "factors_intro": "Move a slider to try another value of one of the factors that weigh "
        "most on this client's score, then simulate. Each slider spans the values of {share} of "
        "the clients the model learnt from (1st to 99th percentile), and this client's own.",
        "factors_intro_none": "None of the factors that weigh most on this client's score can "
        "be moved here.",
        "factors_above": "Change these in the application fields above: {names}.",
        "factors_fixed": "Not editable here (credit history, computed from other information, "
        "a category or not known): {names}.",
        "scores_title": "Probability of default of all clients, by outcome",
        "scores_x": "Probability of default",
        "scores_y": "Clients per percentage point",
        "scores_threshold": "Threshold {thr}",
        "scores_client": "This client {p}",
        "scores_position": "{share} of clients in the reference population have a lower "
        "probability of default than this client ({p}).",
        "scores_alt": "Stacked bar chart of the probability of default of the {n} clients of "
        "the reference population, repaid (blue) and defaulted (orange, hatched); a solid "
        "black line marks the threshold of {thr}, a dashed line this client's {p}.",
        "dir_raises": "higher value: more risk",
        "dir_lowers": "higher value: less risk",
        "dir_mixed": "mixed effect",
        "dir_legend_raises": "A higher value raises the risk",
        "dir_legend_lowers": "A higher value lowers the risk",
        "dir_legend_mixed": "Mixed: depends on the value",
        "importance_dir_alt": "{legend}: {names}.",
        "suggest_label": "Matching client numbers",
        "suggest_count_one": "{n} matching client number; use the up and down arrow keys, "
        "then Enter.",
        "suggest_count_other": "{n} matching client numbers; use the up and down arrow keys, "
        "then Enter.",
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
        "empty": "Aucun client choisi : saisissez un numéro de client et cliquez sur "
        "« Rechercher ».",
        "loading": "Chargement du client {client_id}…",
        "loaded": "Client {client_id} chargé.",
        "granted": "ACCORDÉ",
        "refused": "REFUSÉ",
        "outcome_granted": "accordée",
        "outcome_refused": "refusée",
        "review": "À ÉTUDIER PAR UN ANALYSTE",
        "outcome_review": "transmise à un analyste",
        "decision_line": "**{mark} {word}** : probabilité de défaut **{p}**, {gap} {side} "
        "du seuil de {thr} (refus à partir de {thr}).",
        "decision_line_at": "**{mark} {word}** : probabilité de défaut **{p}**, au niveau du "
        "seuil de {thr} (refus à partir de {thr}).",
        "below": "en dessous",
        "above": "au-dessus",
        "decision_meta": "Version du modèle {version} · référence d'audit `{decision_id}`",
        "raising": "Ce qui augmente le risque",
        "lowering": "Ce qui diminue le risque",
        "none": "Aucun parmi les principaux facteurs.",
        "counterfactual": "Ce qui changerait la décision",
        "gauge_title": "Probabilité de défaut du client {client_id}",
        "gauge_alt": "Jauge : la probabilité de défaut est de {p} ; le seuil, marqué d'un "
        "trait noir, est de {thr} : la demande est {word}.",
        "waterfall_title": "Principaux facteurs du score",
        "waterfall_x": "Probabilité de défaut (%) ; chaque barre : écart en points de pourcentage",
        "waterfall_calibration": "Ajustement aux taux de défaut observés",
        "waterfall_start": "Client moyen",
        "waterfall_others": "Tous les autres facteurs",
        "waterfall_end": "Ce client",
        "waterfall_alt": "Graphique en cascade : de {start} pour le client moyen à {end} "
        "pour ce client ; parmi les principaux facteurs, {up} augmentent la probabilité de "
        "défaut et {down} la diminuent ; le plus fort est {top} ({effect}).",
        "feature": "Information à comparer",
        "years": "ans",
        "days": "jours",
        "yes": "oui",
        "no": "non",
        "not_known": "inconnu",
        "feature_x": "Axe horizontal",
        "feature_y": "Axe vertical",
        "repaid": "Remboursé",
        "defaulted": "Défaut",
        "hidden": "Issue non montrée",
        "hidden_alt_one": "L'issue de {n} client (gris) n'est pas montrée : trop peu de "
        "clients pour la montrer sans révéler celle d'un client.",
        "hidden_alt_other": "L'issue de {n} clients (gris) n'est pas montrée : trop peu de "
        "clients pour la montrer sans révéler celle d'un client.",
        "client": "Ce client",
        "dist_title": "{label} : tous les clients selon l'issue",
        "dist_y": "Part des clients du groupe",
        "dist_alt": "Histogramme de {label} pour les {n} clients d'apprentissage du modèle, "
        "remboursés (bleu) et en défaut (orange, hachuré) ; la valeur du client, {value}, "
        "est marquée.",
        "dist_alt_missing": "Histogramme de {label} pour les {n} clients d'apprentissage du "
        "modèle, remboursés (bleu) et en défaut (orange, hachuré) ; la valeur de ce client "
        "n'est pas connue.",
        "scatter_title": "{x} et {y} : les {k} clients les plus proches",
        "scatter_alt": "Nuage de points de {x} et {y} pour les {k} clients les plus proches "
        "(cercles ; sans dire lesquels ont fait défaut) ; ce client est l'étoile noire.",
        "similar": "Clients proches",
        "scatter_note": "Le service publie des distributions par information, pas des paires "
        "de valeurs : cette vue montre donc les clients les plus proches (trouvés par le "
        "service de scoring) et non toute la population.",
        "scatter_none": "Aucune de ces valeurs n'est connue pour ces clients.",
        "neighbours_title": "Clients les plus proches",
        "neighbours_summary_one": "Sur les {k} clients les plus proches, {d} a fait défaut "
        "({rate}).",
        "neighbours_summary_other": "Sur les {k} clients les plus proches, {d} ont fait "
        "défaut ({rate}).",
        "col_client": "Client",
        "col_similarity": "Distance (plus bas = plus proche)",
        "col_outcome": "Issue",
        "col_probability": "Probabilité de défaut",
        "whatif_intro": "Modifiez la demande puis simulez. **Ceci est une simulation** : ce "
        "n'est pas une décision et elle n'est jamais enregistrée comme telle.",
        "income": "Revenu annuel ({cur})",
        "credit": "Montant du crédit ({cur})",
        "annuity": "Annuité ({cur})",
        "goods": "Prix du bien ({cur})",
        "term": "Durée en mois (crédit ÷ annuité) ; la modifier recalcule l'annuité",
        "children": "Nombre d'enfants",
        "simulate": "Simuler",
        "reset": "Revenir aux valeurs du client",
        "sim_banner": "SIMULATION, pas une décision",
        "sim_change": "La probabilité de défaut simulée est de **{new}** (score réel : "
        "{old}) ; la demande serait {word}.",
        "sim_none": "Recherchez d'abord un client.",
        "reset_done": "Valeurs du client rétablies.",
        "model_title": "Modèle {name}, version {version}",
        "model_text": "Un client est **refusé quand la probabilité de défaut atteint {thr} "
        "ou plus**. Le seuil tient compte du fait qu'un défaut non détecté coûte {fn} fois "
        "plus cher qu'un bon client refusé à tort. Le modèle utilise {n} informations.",
        "metrics": "Qualité mesurée sur des clients non vus à l'apprentissage",
        "importance_title": "Ce qui compte le plus pour le modèle",
        "importance_x": "Part de l'effet moyen de ces facteurs",
        "importance_alt": "Diagramme en barres des {n} facteurs les plus influents ; le "
        "premier est {top}.",
        "importance_none": "L'importance globale est indisponible pendant l'absence du "
        "service d'explication.",
        "unavailable_part": "Cette partie n'a pas pu être chargée : {message}",
        "page_title": "Tableau de bord du conseiller crédit",
        "sign_in": "Connexion conseiller",
        "main_label": "Recherche de client et décision",
        "tabs_label": "Vues du client",
        "field_range": "Saisissez un nombre de {low} à {high}.",
        "field_required": "Saisissez une valeur.",
        "fields_invalid": "Certaines valeurs sont hors de ce que le service accepte ; voir "
        "les messages sous les champs.",
        "cf_found": "Modifier {changes} amènerait la probabilité de défaut à {p}, sous le "
        "seuil de {thr}, et la demande serait accordée.",
        "cf_change": "{label} de {old} à {new}",
        "cf_and": " et ",
        "cf_none": "Aucune modification du montant du crédit, de l'annuité ou du prix du "
        "bien dans des limites réalistes n'amène la probabilité de défaut sous le seuil de "
        "{thr}.",
        "recent_item": "{cid} · {word} · {when}",
        "chart_name": "Graphique : {title}",
        "factors_title": "Principaux facteurs du client",
        "factors_intro": "Déplacez un curseur pour essayer une autre valeur d'un des facteurs "
        "qui pèsent le plus sur le score de ce client, puis simulez. Chaque curseur couvre les "
        "valeurs de {share} des clients d'apprentissage du modèle (du 1er au 99e centile) et "
        "celle de ce client.",
        "factors_intro_none": "Aucun des facteurs qui pèsent le plus sur le score de ce client "
        "ne peut être modifié ici.",
        "factors_above": "À modifier dans les champs de la demande ci-dessus : {names}.",
        "factors_fixed": "Non modifiables ici (historique de crédit, calcul à partir d'autres "
        "informations, catégorie ou valeur inconnue) : {names}.",
        "scores_title": "Probabilité de défaut de tous les clients, selon l'issue",
        "scores_x": "Probabilité de défaut",
        "scores_y": "Clients par point de pourcentage",
        "scores_threshold": "Seuil {thr}",
        "scores_client": "Ce client {p}",
        "scores_position": "{share} des clients de la population de référence ont une "
        "probabilité de défaut plus faible que ce client ({p}).",
        "scores_alt": "Histogramme empilé de la probabilité de défaut des {n} clients de la "
        "population de référence, remboursés (bleu) et en défaut (orange, hachuré) ; un trait "
        "noir plein marque le seuil de {thr}, un trait pointillé les {p} de ce client.",
        "dir_raises": "valeur plus élevée : plus de risque",
        "dir_lowers": "valeur plus élevée : moins de risque",
        "dir_mixed": "effet variable",
        "dir_legend_raises": "Une valeur plus élevée augmente le risque",
        "dir_legend_lowers": "Une valeur plus élevée diminue le risque",
        "dir_legend_mixed": "Effet variable selon la valeur",
        "importance_dir_alt": "{legend} : {names}.",
        "suggest_label": "Numéros de client correspondants",
        "suggest_count_one": "{n} numéro de client correspondant ; flèches haut et bas, puis "
        "Entrée.",
        "suggest_count_other": "{n} numéros de client correspondants ; flèches haut et bas, "
        "puis Entrée.",
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

# The model card's metrics an advisor can read (metrics.json keys); others are not shown.
METRIC_NAMES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "auc_mean": "Ranking quality (ROC AUC; 0.5 = chance, 1 = perfect)",
        "auc": "Ranking quality (ROC AUC; 0.5 = chance, 1 = perfect)",
        "roc_auc": "Ranking quality (ROC AUC; 0.5 = chance, 1 = perfect)",
        "auc_std": "Variation of the ranking quality between folds",
        "pr_auc": "Precision-recall area (higher is better)",
        "recall": "Share of defaults caught",
        "precision": "Refusals that were defaults",
        "accuracy": "Correct decisions",
        "brier": "Brier score (lower is better)",
        "ece": "Calibration error (lower is better)",
        "business_cost": "Business cost at the threshold (lower is better)",
    },
    "fr": {
        "auc_mean": "Qualité du classement (ROC AUC ; 0,5 = hasard, 1 = parfait)",
        "auc": "Qualité du classement (ROC AUC ; 0,5 = hasard, 1 = parfait)",
        "roc_auc": "Qualité du classement (ROC AUC ; 0,5 = hasard, 1 = parfait)",
        "auc_std": "Variation de la qualité du classement entre les plis",
        "pr_auc": "Aire précision-rappel (plus haut = mieux)",
        "recall": "Part des défauts détectés",
        "precision": "Refus qui étaient des défauts",
        "accuracy": "Décisions correctes",
        "brier": "Score de Brier (plus bas = mieux)",
        "ece": "Erreur de calibration (plus bas = mieux)",
        "business_cost": "Coût métier au seuil (plus bas = mieux)",
    },
}

# Kaggle's category values of the application table, in French (English: as in the data).
CATEGORIES_FR: Final[dict[str, str]] = {
    "Cash loans": "Prêt personnel",
    "Revolving loans": "Crédit renouvelable",
    "F": "Femme",
    "M": "Homme",
    "Y": "Oui",
    "N": "Non",
    "Yes": "Oui",
    "No": "Non",
    "XNA": "Non renseigné",
    "XAP": "Sans objet",
    "Children": "Enfants",
    "Family": "Famille",
    "Group of people": "Groupe de personnes",
    "Other_A": "Autre (A)",
    "Other_B": "Autre (B)",
    "Spouse, partner": "Conjoint",
    "Unaccompanied": "Seul",
    "Commercial associate": "Commercial",
    "Pensioner": "Retraité",
    "State servant": "Fonctionnaire",
    "Unemployed": "Sans emploi",
    "Working": "Salarié",
    "Student": "Étudiant",
    "Maternity leave": "Congé maternité",
    "Businessman": "Entrepreneur",
    "Academic degree": "Doctorat",
    "Higher education": "Études supérieures",
    "Incomplete higher": "Études supérieures non terminées",
    "Lower secondary": "Premier cycle du secondaire",
    "Secondary / secondary special": "Secondaire ou professionnel",
    "Civil marriage": "Union civile",
    "Married": "Marié(e)",
    "Separated": "Séparé(e)",
    "Single / not married": "Célibataire",
    "Widow": "Veuf ou veuve",
    "Unknown": "Inconnu",
    "Co-op apartment": "Appartement en coopérative",
    "House / apartment": "Maison ou appartement",
    "Municipal apartment": "Logement social",
    "Office apartment": "Logement de fonction",
    "Rented apartment": "Location",
    "With parents": "Chez ses parents",
    "Accountants": "Comptables",
    "Cleaning staff": "Personnel d'entretien",
    "Cooking staff": "Cuisiniers",
    "Core staff": "Employés",
    "Drivers": "Chauffeurs",
    "HR staff": "Ressources humaines",
    "High skill tech staff": "Techniciens qualifiés",
    "IT staff": "Informaticiens",
    "Laborers": "Ouvriers",
    "Low-skill Laborers": "Ouvriers non qualifiés",
    "Managers": "Cadres",
    "Medicine staff": "Personnel médical",
    "Private service staff": "Services à la personne",
    "Realty agents": "Agents immobiliers",
    "Sales staff": "Vendeurs",
    "Secretaries": "Secrétaires",
    "Security staff": "Sécurité",
    "Waiters/barmen staff": "Serveurs et barmans",
    "MONDAY": "lundi",
    "TUESDAY": "mardi",
    "WEDNESDAY": "mercredi",
    "THURSDAY": "jeudi",
    "FRIDAY": "vendredi",
    "SATURDAY": "samedi",
    "SUNDAY": "dimanche",
    "Advertising": "Publicité",
    "Agriculture": "Agriculture",
    "Bank": "Banque",
    "Cleaning": "Nettoyage",
    "Construction": "Construction",
    "Culture": "Culture",
    "Electricity": "Électricité",
    "Emergency": "Urgences",
    "Government": "Administration",
    "Hotel": "Hôtellerie",
    "Housing": "Logement",
    "Insurance": "Assurance",
    "Kindergarten": "Petite enfance",
    "Legal Services": "Services juridiques",
    "Medicine": "Médecine",
    "Military": "Armée",
    "Mobile": "Téléphonie mobile",
    "Other": "Autre",
    "Police": "Police",
    "Postal": "Poste",
    "Realtor": "Immobilier",
    "Religion": "Religion",
    "Restaurant": "Restauration",
    "School": "École",
    "Security": "Sécurité",
    "Security Ministries": "Ministères de la sécurité",
    "Self-employed": "Indépendant",
    "Services": "Services",
    "Telecom": "Télécoms",
    "University": "Université",
    "not specified": "non précisé",
    "block of flats": "immeuble",
    "specific housing": "logement spécifique",
    "terraced house": "maison mitoyenne",
    "Block": "Parpaing",
    "Mixed": "Mixte",
    "Monolithic": "Monolithe",
    "Others": "Autres",
    "Panel": "Panneaux",
    "Stone, brick": "Pierre ou brique",
    "Wooden": "Bois",
}
# Numbered Kaggle groups: "Industry: type 3" -> "Industrie : type 3".
CATEGORY_PREFIXES_FR: Final = {
    "Business Entity Type": "Entreprise de type",
    "Industry: type": "Industrie : type",
    "Trade: type": "Commerce : type",
    "Transport: type": "Transport : type",
}


def category(lang: str, value: str) -> str:
    """A category value in the advisor's language."""
    if lang != "fr":
        return value
    if value in CATEGORIES_FR:
        return CATEGORIES_FR[value]
    for prefix, french in CATEGORY_PREFIXES_FR.items():
        if value.startswith(prefix):
            return french + value[len(prefix) :]
    return value


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


def tn(lang: str, key: str, count: float, **values: object) -> str:
    """``t`` for a sentence whose grammar follows ``count`` (keys ``key_one``,
    ``key_other``; the CLDR plural rules of the language choose)."""
    return t(lang, f"{key}_{formats.plural(lang, count)}", **values)


def percent(value: float, lang: str, digits: int = 1) -> str:
    return formats.percent(value, lang, digits)
