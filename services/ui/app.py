"""The advisor dashboard: layout and callbacks (what each shows comes from ``views``, the
words from ``texts``, the charts from ``charts``). Every callback catches everything and
shows a worded message (texts.ERRORS): the advisor never sees a stack trace or a gateway
detail other than a validation message about the values they typed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import gradio as gr
from gradio.context import LocalContext

from credit.heap import freeze_startup_objects
from services.ui import charts, views
from services.ui.client import GatewayClient, GatewayError
from services.ui.settings import UISettings
from services.ui.texts import LANGS, METRIC_NAMES, error_text, percent, t

log = logging.getLogger(__name__)

# What-if inputs: (text key, Kaggle column).
WHATIF_FIELDS = [("income", "AMT_INCOME_TOTAL"), ("credit", "AMT_CREDIT"),
                 ("annuity", "AMT_ANNUITY"), ("goods", "AMT_GOODS_PRICE"),
                 ("term", "TERM"), ("children", "CNT_CHILDREN")]  # fmt: skip

THEME = gr.themes.Default(
    primary_hue="blue",
    # Local fonts only: the default theme would fetch Google Fonts from the internet.
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "DejaVu Sans", "sans-serif"],
    font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"],
).set(
    # Darker than the default primary so white button text keeps a 4.5:1 contrast.
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    button_primary_text_color="white",
    # The default greys of hints and subdued text fall under 4.5:1 on white (axe flags them).
    body_text_color_subdued="*neutral_600",
    block_info_text_color="*neutral_600",
)
CSS = """
.ui-msg { padding: .6rem .9rem; border-radius: 6px; border-left: 6px solid #555;
          background: #f4f4f4; color: #1a1a1a; }
.ui-msg.error { border-left-color: #D55E00; background: #fdf0e8; }
.decision { padding: .8rem 1rem; border-radius: 6px; border: 2px solid #1a1a1a; }
.decision.granted { border-left: 12px solid #0072B2; background: #eef6fb; }
.decision.refused { border-left: 12px solid #D55E00; background: #fdf0e8; }
.sim-banner { padding: .5rem .9rem; border: 3px dashed #1a1a1a; background: #fff3cd;
              color: #1a1a1a; font-weight: 700; letter-spacing: .03em; }
.chart-alt { font-size: .95rem; color: #1a1a1a; margin-top: .3rem; }
.profile table { border-collapse: collapse; width: 100%; }
.profile th, .profile td { text-align: left; padding: .25rem .5rem;
                           border-bottom: 1px solid #ddd; color: #1a1a1a; }
.profile th { font-weight: 600; width: 60%; }
.profile summary { font-weight: 700; font-size: 1.05rem; padding: .4rem 0; cursor: pointer; }
a.sign-out { color: #0b4f8a; text-decoration: underline; }
"""


RESIZE_JS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 60); }"
QUEUE_POLL_SECONDS = 0.02  # see launch()
# all_session=false: Gradio's default ends every session of that user name, so one advisor
# signing out would sign out everyone sharing the name; this ends the browser's own only.
SIGN_OUT = "/logout?all_session=false"


def build(settings: UISettings, client: GatewayClient) -> gr.Blocks:
    """The Blocks app; ``launch(demo, settings)`` serves it."""
    default_lang = settings.default_lang

    def guarded(fn: Callable[..., dict[Any, Any]]) -> Callable[..., dict[Any, Any]]:
        """Any failure -> a worded message in the status area; never a trace in the page."""

        @wraps(fn)
        def wrapper(*args: Any) -> dict[Any, Any]:
            lang = next((a for a in args if a in ("en", "fr")), default_lang)
            try:
                return fn(*args)
            except GatewayError as error:
                text = error_text(lang, error.kind, client_id="", detail=error.detail)
                return {status: views.message(text, error=True)}
            except Exception:
                log.exception("dashboard callback %s failed", fn.__name__)
                return {status: views.message(error_text(lang, "error"), error=True)}

        return wrapper

    with gr.Blocks(title="Credit advisor dashboard", analytics_enabled=False) as demo:
        ctx = gr.State({})
        lang = gr.State(default_lang)
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                title_md = gr.Markdown(t(default_lang, "title"))
                intro_md = gr.Markdown(t(default_lang, "intro"))
            with gr.Column(scale=1, min_width=200):
                lang_radio = gr.Radio(list(LANGS), label=t(default_lang, "lang"),
                                      value=next(k for k, v in LANGS.items()
                                                 if v == default_lang))  # fmt: skip
                sign_out = gr.HTML(f'<a class="sign-out" href="{SIGN_OUT}">'
                                   f'{t(default_lang, "sign_out")}</a>')  # fmt: skip
        with gr.Row(equal_height=True):
            client_box = gr.Textbox(label=t(default_lang, "client_id"), max_lines=1,
                                    placeholder="100002", scale=2, elem_id="client-id")  # fmt: skip
            lookup_btn = gr.Button(t(default_lang, "lookup"), variant="primary", scale=1,
                                   elem_id="lookup")  # fmt: skip
            recent = gr.Dropdown(choices=[], label=t(default_lang, "recent"),
                                 info=t(default_lang, "recent_info"), scale=3,
                                 elem_id="recent")  # fmt: skip
            refresh_btn = gr.Button(t(default_lang, "refresh"), scale=1, elem_id="refresh")
        status = gr.HTML(views.message(t(default_lang, "empty")), elem_id="status")

        with gr.Tabs():
            with gr.Tab(t(default_lang, "tab_decision"), id="decision") as tab_decision:
                with gr.Row():
                    with gr.Column(scale=1):
                        gauge_plot = gr.Plot(show_label=False, elem_id="gauge")
                        gauge_alt = gr.Markdown(elem_classes="chart-alt", elem_id="gauge-alt")
                    with gr.Column(scale=1):
                        decision_html = gr.HTML(elem_id="decision")
                        reasons_md = gr.Markdown(elem_id="reasons")
                waterfall_plot = gr.Plot(show_label=False, elem_id="waterfall")
                waterfall_alt = gr.Markdown(elem_classes="chart-alt")
            with gr.Tab(t(default_lang, "tab_profile"), id="profile") as tab_profile:
                profile_html = gr.HTML(elem_id="profile")
            with gr.Tab(t(default_lang, "tab_compare"), id="compare") as tab_compare:
                feature_dd = gr.Dropdown(choices=[], label=t(default_lang, "feature"))
                dist_plot = gr.Plot(show_label=False, elem_id="distribution")
                dist_alt = gr.Markdown(elem_classes="chart-alt")
                with gr.Row():
                    fx_dd = gr.Dropdown(choices=[], label=t(default_lang, "feature_x"))
                    fy_dd = gr.Dropdown(choices=[], label=t(default_lang, "feature_y"))
                scatter_plot = gr.Plot(show_label=False, elem_id="scatter")
                scatter_alt = gr.Markdown(elem_classes="chart-alt")
                neighbours_html = gr.HTML(elem_id="neighbours")
            with gr.Tab(t(default_lang, "tab_whatif"), id="whatif") as tab_whatif:
                whatif_intro = gr.Markdown(t(default_lang, "whatif_intro"))
                with gr.Row():
                    inputs = {key: gr.Number(label=t(default_lang, key), elem_id=f"whatif-{key}",
                                             minimum=0) for key, _ in WHATIF_FIELDS}  # fmt: skip
                with gr.Row():
                    simulate_btn = gr.Button(t(default_lang, "simulate"), variant="primary",
                                             elem_id="simulate")  # fmt: skip
                    reset_btn = gr.Button(t(default_lang, "reset"), elem_id="reset")
                sim_status = gr.HTML(elem_id="sim-status")
                with gr.Row():
                    with gr.Column():
                        sim_gauge = gr.Plot(show_label=False, elem_id="sim-gauge")
                        sim_gauge_alt = gr.Markdown(elem_classes="chart-alt")
                    with gr.Column():
                        sim_decision = gr.HTML(elem_id="sim-decision")
                        sim_reasons = gr.Markdown()
                sim_waterfall = gr.Plot(show_label=False)
                sim_waterfall_alt = gr.Markdown(elem_classes="chart-alt")
            with gr.Tab(t(default_lang, "tab_model"), id="model") as tab_model:
                model_md = gr.Markdown(elem_id="model-card")
                importance_plot = gr.Plot(show_label=False)
                importance_alt = gr.Markdown(elem_classes="chart-alt")

        # ---- callbacks -------------------------------------------------------------------
        def render_client(client_id: int, code: str, score: dict[str, Any]) -> dict[Any, Any]:
            explanation = client.explanation(client_id, code)
            profile = client.profile(client_id, code)
            fields = [f for g in profile["groups"] for f in g["fields"]]
            values = {f["name"]: f["value"] for f in fields}
            labels = {f["name"]: f["label"] for f in fields}
            numeric = [(labels[n], n) for n, v in values.items() if views.number(v) is not None]
            contributions = [c["feature"] for c in explanation["contributions"]]
            numeric_top = [n for n in contributions if views.number(values.get(n)) is not None]
            feature = contributions[0] if contributions else fields[0]["name"]
            fx = numeric_top[0] if numeric_top else numeric[0][1]
            fy = numeric_top[1] if len(numeric_top) > 1 else numeric[1][1]
            gauge_fig, gauge_text = views.gauge(code, score["probability"], score["threshold"],
                                           score["decision"],
                                           t(code, "gauge_title", client_id=client_id))  # fmt: skip
            water_fig, water_text = views.waterfall(code, explanation)
            meta = t(code, "decision_meta", version=score["model_version"],
                     decision_id=score["decision_id"]).replace("`", "")  # fmt: skip
            state = {
                "client_id": client_id,
                "score": score,
                "values": values,
                "labels": labels,
                "display": {f["name"]: f["display_value"] for f in fields},
                "units": {f["name"]: f["unit"] for f in fields},
                "shown_term": views.term(values),
            }
            updates: dict[Any, Any] = {
                ctx: state,
                status: views.message(t(code, "loaded", client_id=client_id)),
                gauge_plot: gauge_fig, gauge_alt: gauge_text,
                decision_html: views.decision_html(code, score["probability"], score["threshold"],
                                              score["decision"], meta),
                reasons_md: views.reasons(code, explanation),
                waterfall_plot: water_fig, waterfall_alt: water_text,
                profile_html: views.profile_html(profile),
                feature_dd: gr.update(choices=[(lb, n) for n, lb in labels.items()],
                                      value=feature),
                fx_dd: gr.update(choices=numeric, value=fx),
                fy_dd: gr.update(choices=numeric, value=fy),
            }  # fmt: skip
            updates.update(reset_fields(state))
            updates.update({sim_status: "", sim_gauge: None, sim_gauge_alt: "",
                            sim_decision: "", sim_reasons: "", sim_waterfall: None,
                            sim_waterfall_alt: ""})  # fmt: skip
            return updates

        def reset_fields(state: dict[str, Any]) -> dict[Any, Any]:
            values = state.get("values", {})
            out: dict[Any, Any] = {}
            for key, column in WHATIF_FIELDS:
                value = views.term(values) if column == "TERM" else views.number(values.get(column))
                out[inputs[key]] = value
            return out

        @guarded
        def on_lookup(raw: str | float | None, code: str) -> dict[Any, Any]:
            text = str(raw if raw is not None else "").strip()
            if not text.isdigit() or int(text) <= 0 or int(text) >= 2**63:
                return {status: views.message(error_text(code, "invalid_id"), error=True)}
            client_id = int(text)
            try:
                score = client.score(client_id)
            except GatewayError as error:
                if error.kind == "not_found":
                    return {
                        status: views.message(
                            error_text(code, "not_found", client_id=client_id), error=True
                        )
                    }
                raise
            return render_client(client_id, code, score)

        def _distribution(state: dict[str, Any], feature: str, code: str) -> dict[Any, Any]:
            population = client.population(feature, code)
            value = state["values"].get(feature)
            names = {"repaid": t(code, "repaid"), "defaulted": t(code, "defaulted"),
                     "client": t(code, "client")}  # fmt: skip
            label = population["label"]
            fig = charts.distribution(
                population,
                value,
                names,
                t(code, "dist_title", label=label),
                t(code, "dist_y"),
                views.axis(code, label, population["unit"]),
            )
            shown = state.get("display", {}).get(feature)
            if value is None:
                shown = t(code, "dist_missing")
            elif shown is None:
                shown = value if isinstance(value, str) else f"{value:,.2f}"
            alt = t(code, "dist_alt", label=label, n=f"{population['n']:,}", value=shown)
            return {dist_plot: fig, dist_alt: alt}

        def _scatter(state: dict[str, Any], fx: str, fy: str, code: str) -> dict[Any, Any]:
            # The API gives the group's default rate and anonymous, outcome-free points:
            # no similar client's id or outcome ever reaches the dashboard.
            group = client.neighbours(state["client_id"], [fx, fy])
            units = state["units"]
            ux, uy = units.get(fx, ""), units.get(fy, "")
            points = [
                (views.plotted(n["values"].get(fx), ux), views.plotted(n["values"].get(fy), uy))
                for n in group["neighbours"]
            ]
            labels = state["labels"]
            names = {"similar": t(code, "similar"), "client": t(code, "client")}
            x_label, y_label = labels.get(fx, fx), labels.get(fy, fy)
            k, d = group["k"], group["defaulted_count"]
            client_point = (views.plotted(state["values"].get(fx), ux),
                            views.plotted(state["values"].get(fy), uy))  # fmt: skip
            fig = charts.scatter(
                points, client_point, names,
                t(code, "scatter_title", x=x_label, y=y_label, k=k),
                views.axis(code, x_label, ux), views.axis(code, y_label, uy),
            )  # fmt: skip
            alt = t(code, "scatter_alt", x=x_label, y=y_label, k=k, d=d)
            if not any(x is not None and y is not None for x, y in points):
                alt += " " + t(code, "scatter_none")
            alt += "\n\n*" + t(code, "scatter_note") + "*"
            return {scatter_plot: fig, scatter_alt: alt,
                    neighbours_html: views.neighbours_summary(code, k, d)}  # fmt: skip

        def part_failed(code: str, error: Exception, *targets: Any) -> dict[Any, Any]:
            kind = error.kind if isinstance(error, GatewayError) else "error"
            if not isinstance(error, GatewayError):
                log.exception("dashboard comparison failed")
            text = t(code, "unavailable_part", message=error_text(code, kind, detail=""))
            return {target: text for target in targets}

        def on_compare(state: dict[str, Any], feature: str, fx: str, fy: str,
                       code: str) -> dict[Any, Any]:  # fmt: skip
            if not state.get("client_id"):
                return {}
            out: dict[Any, Any] = {}
            # Each half fails alone: a missing histogram should not hide the neighbours.
            try:
                out.update(_distribution(state, feature, code))
            except Exception as error:
                out.update(part_failed(code, error, dist_alt))
            try:
                out.update(_scatter(state, fx, fy, code))
            except Exception as error:
                out.update(part_failed(code, error, scatter_alt))
            return out

        def on_feature(state: dict[str, Any], feature: str, code: str) -> dict[Any, Any]:
            if not state.get("client_id") or not feature:
                return {}
            try:
                return _distribution(state, feature, code)
            except Exception as error:
                return part_failed(code, error, dist_alt)

        def on_pair(state: dict[str, Any], fx: str, fy: str, code: str) -> dict[Any, Any]:
            if not state.get("client_id") or not fx or not fy:
                return {}
            try:
                return _scatter(state, fx, fy, code)
            except Exception as error:
                return part_failed(code, error, scatter_alt)

        @guarded
        def on_simulate(state: dict[str, Any], code: str, *edited: float | None) -> dict:
            if not state.get("client_id"):
                return {sim_status: views.message(t(code, "sim_none"), error=True)}
            fields = dict(zip([column for _, column in WHATIF_FIELDS], edited, strict=True))
            term = fields.pop("TERM")
            if any(v is not None and v <= 0 for k, v in fields.items() if k != "CNT_CHILDREN"):
                return {sim_status: views.message(error_text(code, "invalid", detail="> 0"),
                                             error=True)}  # fmt: skip
            # The term is credit / annuity: when the advisor changed the term shown last, it
            # sets the annuity; otherwise it follows the credit and annuity entered.
            shown = state.get("shown_term")
            credit = fields.get("AMT_CREDIT")
            if term and shown and credit and abs(term - shown) >= 0.05:
                fields["AMT_ANNUITY"] = round(credit / term, 2)
            new_term = views.term(fields)
            application = views.whatif_application(state["values"], state["client_id"], fields)
            try:
                score = client.simulate(application)
                explanation = client.explain_application(application, code)
            except GatewayError as error:
                if error.kind != "invalid":
                    raise
                return {sim_status: views.message(error_text(code, "invalid", detail=error.detail),
                                             error=True)}  # fmt: skip
            real = state["score"]
            fig, alt = views.gauge(
                code,
                score["probability"],
                score["threshold"],
                score["decision"],
                f"{t(code, 'sim_banner')}: {t(code, 'gauge_title', client_id=state['client_id'])}",
            )
            water_fig, water_alt = views.waterfall(code, explanation)
            change = t(code, "sim_change", new=percent(score["probability"], code),
                       old=percent(real["probability"], code),
                       word=t(code, score["decision"]).lower())  # fmt: skip
            return {
                sim_status: f'<div class="sim-banner" role="status">⚠ {t(code, "sim_banner")}'
                f"</div>",
                sim_gauge: fig, sim_gauge_alt: alt,
                sim_decision: views.decision_html(code, score["probability"], score["threshold"],
                                             score["decision"], t(code, "sim_banner")),
                sim_reasons: change + "\n\n" + views.reasons(code, explanation),
                sim_waterfall: water_fig, sim_waterfall_alt: water_alt,
                inputs["annuity"]: fields.get("AMT_ANNUITY"), inputs["term"]: new_term,
                ctx: {**state, "shown_term": new_term},
            }  # fmt: skip

        @guarded
        def on_reset(state: dict[str, Any], code: str) -> dict[Any, Any]:
            out = reset_fields(state)
            if state.get("values"):
                out[ctx] = {**state, "shown_term": views.term(state["values"])}
            out.update({sim_status: views.message(t(code, "reset_done")), sim_gauge: None,
                        sim_gauge_alt: "", sim_decision: "", sim_reasons: "",
                        sim_waterfall: None, sim_waterfall_alt: ""})  # fmt: skip
            return out

        @guarded
        def on_recent(code: str) -> dict[Any, Any]:
            seen: dict[int, str] = {}
            for item in client.recent_decisions(100):
                cid = item.get("client_id")
                if cid is None or cid in seen or item.get("simulation"):
                    continue
                when = str(item["created_at"])[:16].replace("T", " ")
                seen[cid] = f"{cid} · {t(code, item['decision'])} · {when}"
                if len(seen) >= 20:
                    break
            return {recent: gr.update(choices=[(label, str(cid)) for cid, label in
                                               seen.items()], value=None)}  # fmt: skip

        @guarded
        def on_model(code: str) -> dict[Any, Any]:
            card = client.model(code)
            names = METRIC_NAMES[code]
            metrics = "\n".join(
                f"- {names.get(key, key)}: {value:.3f}"
                for key, value in sorted(card["metrics"].items())
                if key != "threshold"
            )
            title = t(code, "model_title", name=card["model_name"], version=card["model_version"])
            text = "\n\n".join([
                f"### {title}",
                t(code, "model_text", thr=percent(card["threshold"], code),
                  fn=f"{card['cost_false_negative'] / max(card['cost_false_positive'], 1e-9):g}",
                  n=card["n_features"]),
                f"**{t(code, 'metrics')}**", metrics,
            ])  # fmt: skip
            rows = [(i["label"], i["mean_abs_shap"]) for i in card["global_importance"] or []]
            if not rows:
                return {model_md: text, importance_plot: None,
                        importance_alt: t(code, "importance_none")}  # fmt: skip
            fig = charts.importance(rows, t(code, "importance_title"), t(code, "importance_x"))
            return {
                model_md: text,
                importance_plot: fig,
                importance_alt: t(code, "importance_alt", n=len(rows), top=rows[0][0]),
            }

        @guarded
        def on_language(choice: str, state: dict[str, Any]) -> dict[Any, Any]:
            code = LANGS.get(choice, "en")
            out: dict[Any, Any] = {
                lang: code, title_md: t(code, "title"), intro_md: t(code, "intro"),
                lang_radio: gr.update(label=t(code, "lang")),
                sign_out: f'<a class="sign-out" href="{SIGN_OUT}">{t(code, "sign_out")}</a>',
                client_box: gr.update(label=t(code, "client_id")),
                lookup_btn: gr.update(value=t(code, "lookup")),
                recent: gr.update(label=t(code, "recent"), info=t(code, "recent_info")),
                refresh_btn: gr.update(value=t(code, "refresh")),
                tab_decision: gr.update(label=t(code, "tab_decision")),
                tab_profile: gr.update(label=t(code, "tab_profile")),
                tab_compare: gr.update(label=t(code, "tab_compare")),
                tab_whatif: gr.update(label=t(code, "tab_whatif")),
                tab_model: gr.update(label=t(code, "tab_model")),
                feature_dd: gr.update(label=t(code, "feature")),
                fx_dd: gr.update(label=t(code, "feature_x")),
                fy_dd: gr.update(label=t(code, "feature_y")),
                whatif_intro: t(code, "whatif_intro"),
                simulate_btn: gr.update(value=t(code, "simulate")),
                reset_btn: gr.update(value=t(code, "reset")),
                status: views.message(t(code, "empty")),
            }  # fmt: skip
            for key, _ in WHATIF_FIELDS:
                out[inputs[key]] = gr.update(label=t(code, key))
            if state.get("client_id"):
                # Re-worded from the gateway, not re-scored: no second decision is logged.
                out.update(render_client(state["client_id"], code, state["score"]))
            return out

        everything = [
            ctx, lang, status, title_md, intro_md, lang_radio, sign_out, client_box, lookup_btn,
            recent, refresh_btn, tab_decision, tab_profile, tab_compare, tab_whatif, tab_model,
            gauge_plot, gauge_alt, decision_html, reasons_md, waterfall_plot, waterfall_alt,
            profile_html, feature_dd, fx_dd, fy_dd, whatif_intro, *inputs.values(),
            simulate_btn, reset_btn, sim_status, sim_gauge, sim_gauge_alt, sim_decision,
            sim_reasons, sim_waterfall, sim_waterfall_alt,
        ]  # fmt: skip
        compare_in = [ctx, feature_dd, fx_dd, fy_dd, lang]
        compare_out = [dist_plot, dist_alt, scatter_plot, scatter_alt, neighbours_html]
        model_out = [status, model_md, importance_plot, importance_alt]

        for trigger in (lookup_btn.click, client_box.submit):
            trigger(on_lookup, [client_box, lang], everything).then(
                on_compare, compare_in, compare_out
            )
        recent.input(lambda value: value or gr.skip(), recent, client_box).then(
            on_lookup, [client_box, lang], everything
        ).then(on_compare, compare_in, compare_out)
        refresh_btn.click(on_recent, lang, [status, recent])
        feature_dd.input(on_feature, [ctx, feature_dd, lang], [dist_plot, dist_alt])
        for dropdown in (fx_dd, fy_dd):
            dropdown.input(on_pair, [ctx, fx_dd, fy_dd, lang],
                           [scatter_plot, scatter_alt, neighbours_html])  # fmt: skip
        simulate_btn.click(on_simulate, [ctx, lang, *inputs.values()],
                           [status, sim_status, sim_gauge, sim_gauge_alt, sim_decision,
                            sim_reasons, sim_waterfall, sim_waterfall_alt, ctx,
                            inputs["annuity"], inputs["term"]])  # fmt: skip
        reset_btn.click(on_reset, [ctx, lang],
                        [ctx, status, sim_status, sim_gauge, sim_gauge_alt, sim_decision,
                         sim_reasons, sim_waterfall, sim_waterfall_alt,
                         *inputs.values()])  # fmt: skip
        lang_radio.input(on_language, [lang_radio, ctx], everything).then(
            on_compare, compare_in, compare_out
        ).then(on_model, lang, model_out).then(on_recent, lang, [status, recent])
        for tab in (tab_decision, tab_profile, tab_compare, tab_whatif, tab_model):
            # Plotly sizes a figure drawn in a hidden tab to nothing; a resize on showing the
            # tab makes it fill its box again.
            tab.select(None, None, None, js=RESIZE_JS)
        demo.load(on_model, lang, model_out).then(on_recent, lang, [status, recent])
    return demo


def current_advisor() -> str | None:
    """The advisor whose event is running: Gradio sets the request in a context variable
    around each callback (in the callback's own thread)."""
    request = LocalContext.request.get(None)
    username = getattr(request, "username", None)
    return username if isinstance(username, str) and username else None


def launch(
    settings: UISettings, *, prevent_thread_lock: bool = False, freeze_heap: bool = False
) -> gr.Blocks:
    sign_in = settings.sign_in()  # before anything starts: refuses default credentials
    client = GatewayClient(settings.gateway_url, settings.api_key(), settings.timeout_seconds,
                           advisor=current_advisor)  # fmt: skip
    demo = build(settings, client)
    demo.queue(default_concurrency_limit=8)
    # Gradio's queue polls for work every millisecond (and for progress every 10 ms) on
    # Linux: ~7 % of a core while nobody uses the dashboard, taken from the scoring services
    # on a shared node. 20 ms is still well below what an advisor notices.
    demo._queue.sleep_when_free = QUEUE_POLL_SECONDS
    demo._queue.progress_update_sleep_when_free = QUEUE_POLL_SECONDS
    if freeze_heap:  # the process's own start-up; tests leave theirs alone
        freeze_startup_objects()
    demo.launch(
        server_name=settings.host, server_port=settings.port,
        auth=sign_in,
        auth_message="Advisor sign-in / Connexion conseiller",
        show_error=False,  # internals stay in the server log
        theme=THEME, css=CSS, ssr_mode=False, pwa=False, mcp_server=False,
        footer_links=[], prevent_thread_lock=prevent_thread_lock, quiet=True,
    )  # fmt: skip
    return demo
