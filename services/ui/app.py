"""The advisor dashboard: layout and callbacks (what each shows comes from ``views``, the
words from ``texts``, the charts from ``charts``). Every callback catches everything and
shows a worded message (texts.ERRORS): the advisor never sees a stack trace or a gateway
detail other than a validation message about the values they typed."""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from typing import Any

import gradio as gr
from gradio.context import LocalContext
from starlette.middleware import Middleware

from credit.heap import freeze_startup_objects
from services.ui import charts, formats, page, views
from services.ui.client import GatewayClient, GatewayError
from services.ui.settings import UISettings
from services.ui.texts import LANGS, METRIC_NAMES, category, error_text, percent, t

log = logging.getLogger(__name__)

# What-if inputs: (text key, Kaggle column).
WHATIF_FIELDS = [
    ("income", "AMT_INCOME_TOTAL"),
    ("credit", "AMT_CREDIT"),
    ("annuity", "AMT_ANNUITY"),
    ("goods", "AMT_GOODS_PRICE"),
    ("term", "TERM"),
    ("children", "CNT_CHILDREN"),
]
# Sliders for the client's principal factors (views.PRINCIPAL_FACTORS considered): one slot
# each, hidden until a client's factors fill them.
FACTOR_SLOTS = views.PRINCIPAL_FACTORS
REQUIRED = {"AMT_INCOME_TOTAL", "AMT_CREDIT", "AMT_ANNUITY"}  # the others keep the client's
MONEY = {"AMT_INCOME_TOTAL", "AMT_CREDIT", "AMT_ANNUITY", "AMT_GOODS_PRICE"}

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
.ui-msg.ui-error { border-left-color: #D55E00; background: #fdf0e8; }
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
.field-error { color: #a63c00; font-weight: 600; margin: .2rem 0 0; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden;
           clip: rect(0 0 0 0); white-space: nowrap; }
/* Plotly's toolbar: English, unlabelled, a link to plotly.com; an advisor needs none of it. */
.modebar-container { display: none !important; }
/* A visible focus on everything reachable with the keyboard. */
:focus-visible, input:focus-visible + span, label:focus-within {
  outline: 3px solid #0b4f8a !important; outline-offset: 2px; }
/* Every tab stays a tab at any width (reflow): Gradio folds the tabs that do not fit on
   one line into an unlabelled "More tabs" menu, measured on a hidden copy of the tabs;
   the copy is made tiny so they always "fit", and the real ones wrap onto more lines. */
#views .tab-container.visually-hidden button { font-size: 1px !important;
  padding: 0 !important; min-width: 0 !important; width: 1px !important; }
#views [role="tablist"] { flex-wrap: wrap !important; height: auto !important; }
#views .overflow-menu { display: none !important; }
/* Client number suggestions (a listbox under the field, app.HEAD's script). */
/* Over what follows (as a select's list), not pushing the row's buttons taller. */
#client-suggest { position: relative; overflow: visible !important; z-index: 60; }
#client-suggestions { list-style: none; margin: 0; padding: 0; position: absolute; top: 0;
  left: 0; right: 0; max-width: 20rem; border: 1px solid #555; border-radius: 4px;
  background: #fff; box-shadow: 0 4px 10px rgba(0, 0, 0, .25); }
#client-suggestions[hidden], #client-suggest [role="status"][hidden] { display: none !important; }
#client-suggestions [role="option"] { padding: .3rem .6rem; cursor: pointer; color: #1a1a1a;
  margin: 0; }
#client-suggestions [role="option"][aria-selected="true"] { background: #0b4f8a;
  color: #fff; outline: 2px solid #0b4f8a; }
#client-suggestions [role="option"]:hover { text-decoration: underline; }
#client-suggestions strong { color: inherit !important; }
/* The selected tab: dark enough on white (4.5:1). */
button[role="tab"][aria-selected="true"] { color: #0b4f8a !important;
                                           border-color: #0b4f8a !important; }
"""


RESIZE_JS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 60); }"
QUEUE_POLL_SECONDS = 0.02  # see launch()
# all_session=false: Gradio's default ends every session of that user name, so one advisor
# signing out would sign out everyone sharing the name; this ends the browser's own only.
SIGN_OUT = "/logout?all_session=false"
# Each chart and the element holding its text description (aria-describedby).
CHARTS = {
    "gauge": "gauge-alt",
    "waterfall": "waterfall-alt",
    "scores": "scores-alt",
    "distribution": "distribution-alt",
    "scatter": "scatter-alt",
    "sim-gauge": "sim-gauge-alt",
    "sim-waterfall": "sim-waterfall-alt",
    "importance": "importance-alt",
}
TITLES = {code: t(code, "page_title") for code in LANGS.values()}
# Page-wide behaviour Gradio does not give: the page's language and title follow the
# advisor's choice; tabs move with the arrow keys (WAI-ARIA tabs pattern); each chart is
# one image for assistive technologies, named by its title and described by its text
# (Plotly's SVG text would otherwise be read out piece by piece).
HEAD = (
    "<script>\n(() => {\n"
    f"const CHARTS = {json.dumps(CHARTS)}, TITLES = {json.dumps(TITLES)};\n"
    + r"""
// The client named in the address when the page loaded (?client=100002), kept now: by the
// time the load events reach the look-up, a quick advisor's own look-up may already have
// put its client in the address, and opening that again would reset the what-if typed.
window.creditOpenClient = new URLSearchParams(location.search).get("client") || "";
window.uiLanguage = (code) => {
  document.documentElement.lang = code;
  if (TITLES[code]) document.title = TITLES[code];
};
function labelCharts() {
  for (const [id, alt] of Object.entries(CHARTS)) {
    const plot = document.querySelector(`#${id} .js-plotly-plot`);
    if (!plot) continue;
    const title = plot.querySelector(".gtitle");
    // A wrapped title is one tspan per line: joined with spaces ("all clients", not
    // "allclients").
    const lines = title ? [...title.querySelectorAll("tspan.line")] : [];
    const name = lines.length ? lines.map((l) => l.textContent).join(" ")
      : (title ? title.textContent : "");
    if (plot.getAttribute("aria-label") !== name) plot.setAttribute("aria-label", name);
    if (plot.getAttribute("role") !== "img") plot.setAttribute("role", "img");
    if (document.getElementById(alt)) plot.setAttribute("aria-describedby", alt);
  }
}
document.addEventListener("keydown", (event) => {
  const tab = event.target.closest && event.target.closest('[role="tab"]');
  if (!tab || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
  const list = tab.closest('[role="tablist"]');
  const tabs = [...list.querySelectorAll('[role="tab"]')].filter((t) => t.offsetParent);
  const at = tabs.indexOf(tab), n = tabs.length;
  const next = {ArrowLeft: (at + n - 1) % n, ArrowRight: (at + 1) % n, Home: 0, End: n - 1};
  const target = tabs[next[event.key]];
  event.preventDefault();
  target.click();
  target.focus();
});
// Client number suggestions: the WAI-ARIA combobox pattern on the client number field. The
// list (views.suggestions) is drawn by the server; this opens it while the field has the
// focus and the list answers the text in it, moves in it with the arrow keys
// (aria-activedescendant: the focus stays in the field) and looks a choice up.
const field = () => document.querySelector("#client-id input, #client-id textarea");
const suggestList = () => document.getElementById("client-suggestions");
const suggestOptions = () => [...document.querySelectorAll("#client-suggestions [role=option]")];
let chosen = false;  // a choice or a look-up closes the list until the advisor types again
function setActive(option) {
  const input = field();
  for (const o of suggestOptions()) o.setAttribute("aria-selected", String(o === option));
  if (option) input.setAttribute("aria-activedescendant", option.id);
  else input.removeAttribute("aria-activedescendant");
}
function syncSuggest() {
  const input = field(), list = suggestList();
  if (!input) return;
  if (input.getAttribute("role") !== "combobox") {
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", "client-suggestions");
  }
  const open = Boolean(list) && !chosen && document.activeElement === input
    && list.dataset.prefix === input.value.trim() && suggestOptions().length > 0;
  if (list) list.hidden = !open;
  const count = list && list.nextElementSibling;
  if (count && count.getAttribute("role") === "status") count.hidden = !open;
  if (input.getAttribute("aria-expanded") !== String(open)) {
    input.setAttribute("aria-expanded", String(open));
  }
  if (!open && input.hasAttribute("aria-activedescendant")) setActive(null);
}
function choose(option) {
  const input = field();
  input.value = option.dataset.client;
  input.dispatchEvent(new Event("input", {bubbles: true}));  // Gradio reads the new value
  chosen = true;
  syncSuggest();
  setTimeout(() => document.getElementById("lookup").click(), 0);
}
document.addEventListener("keydown", (event) => {
  const input = field();
  if (!input || event.target !== input) return;
  const list = suggestList(), options = suggestOptions();
  const open = list && !list.hidden && options.length > 0;
  const at = options.findIndex((o) => o.getAttribute("aria-selected") === "true");
  if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    event.preventDefault();
    const n = options.length;
    setActive(options[event.key === "ArrowDown" ? (at + 1) % n : (at <= 0 ? n - 1 : at - 1)]);
  } else if (event.key === "Enter") {
    if (open && at >= 0) {  // the highlighted number, not the text typed
      event.preventDefault();
      event.stopPropagation();
      choose(options[at]);
    } else {
      chosen = true;
      syncSuggest();
    }
  } else if (event.key === "Escape" && open) {
    event.preventDefault();
    chosen = true;
    syncSuggest();
  }
}, true);
document.addEventListener("input", (event) => {
  if (event.target === field()) { chosen = false; setTimeout(syncSuggest, 0); }
}, true);
for (const type of ["focusin", "focusout"]) {
  document.addEventListener(type, () => setTimeout(syncSuggest, 0), true);
}
// A click on an option chooses it; pressing it must not take the focus from the field.
document.addEventListener("mousedown", (event) => {
  if (event.target.closest && event.target.closest("#client-suggestions [role=option]")) {
    event.preventDefault();
  }
}, true);
document.addEventListener("click", (event) => {
  const option = event.target.closest && event.target.closest("#client-suggestions [role=option]");
  if (option) choose(option);
}, true);
// Gradio names a slider's two inputs "range slider for ..." and "number input for ...",
// in English whatever the page's language: both are named by the slider's own label.
function nameSliders() {
  for (const block of document.querySelectorAll("[id^=factor-]")) {
    const label = block.querySelector("label [data-testid=block-info]");
    if (!label) continue;
    for (const input of block.querySelectorAll("input")) {
      if (input.getAttribute("aria-label") !== label.textContent) {
        input.setAttribute("aria-label", label.textContent);
      }
    }
  }
}
let timer = null;
const watch = () => new MutationObserver(() => {
  clearTimeout(timer);
  timer = setTimeout(() => { labelCharts(); syncSuggest(); nameSliders(); }, 30);
}).observe(document.body, {childList: true, subtree: true});
if (document.body) watch(); else document.addEventListener("DOMContentLoaded", watch);
})();
</script>"""
)
LANGUAGE_JS = (
    "(choice) => { window.uiLanguage && window.uiLanguage("
    f"{json.dumps(LANGS)}[choice] || 'en'); return [choice]; }}"
)
# The client named in the address when the page loaded (?client=100002), opened once.
OPEN_JS = """(code, box) => {
  const id = window.creditOpenClient || "";
  window.creditOpenClient = "";
  return [code, id];
}"""
# A client chosen in the recent list is looked up as if typed, and the list emptied, ready
# for the next choice (even of the same client).
PICK_JS = """(choice) => {
  if (choice) {
    const input = document.querySelector("#client-id input, #client-id textarea");
    input.value = choice;
    input.dispatchEvent(new Event("input", {bubbles: true}));  // Gradio reads the new value
    setTimeout(() => document.getElementById("lookup").click(), 0);
  }
  return [null];
}"""
# A look-up's client in the address bar: the page can be bookmarked or shared.
CLIENT_URL_JS = """(raw) => {
  const id = String(raw || "").trim();
  if (/^[0-9]{1,19}$/.test(id)) history.replaceState(null, "", "?client=" + id);
  return [raw];
}"""


def build(settings: UISettings, client: GatewayClient) -> gr.Blocks:
    """The Blocks app; ``launch(demo, settings)`` serves it."""
    default_lang = settings.default_lang
    formats.CURRENCY = settings.currency

    def cur(code: str) -> str:
        return formats.currency_symbol(code)

    with gr.Blocks(title=t(default_lang, "page_title"), analytics_enabled=False) as demo:
        ctx = gr.State({})
        lang = gr.State(default_lang)
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                title_md = gr.Markdown(t(default_lang, "title"))
                intro_md = gr.Markdown(t(default_lang, "intro"))
            with gr.Column(scale=1, min_width=200):
                lang_radio = gr.Radio(
                    list(LANGS),
                    label=t(default_lang, "lang"),
                    value=next(k for k, v in LANGS.items() if v == default_lang),
                    elem_id="lang",
                )
                sign_out = gr.HTML(
                    f'<a class="sign-out" href="{SIGN_OUT}">{t(default_lang, "sign_out")}</a>'
                )
        with gr.Row(equal_height=True):
            with gr.Column(scale=2, min_width=200):
                client_box = gr.Textbox(
                    label=t(default_lang, "client_id"),
                    max_lines=1,
                    placeholder="100002",
                    elem_id="client-id",
                    # The browser's own history would open a second list over ours.
                    html_attributes=gr.InputHTMLAttributes(autocomplete="off"),
                )
                suggest_html = gr.HTML(
                    views.suggestions(default_lang), elem_id="client-suggest", padding=False
                )
            lookup_btn = gr.Button(
                t(default_lang, "lookup"), variant="primary", scale=1, elem_id="lookup"
            )
            recent = gr.Dropdown(
                choices=[],
                label=t(default_lang, "recent"),
                info=t(default_lang, "recent_info"),
                scale=3,
                elem_id="recent",
            )
            refresh_btn = gr.Button(t(default_lang, "refresh"), scale=1, elem_id="refresh")
        status = gr.HTML(views.message(t(default_lang, "empty")), elem_id="status")

        with gr.Tabs(elem_id="views"):
            with gr.Tab(t(default_lang, "tab_decision"), id="decision") as tab_decision:
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        gauge_plot = gr.Plot(show_label=False, elem_id="gauge", visible=False)
                        gauge_alt = gr.Markdown(elem_classes="chart-alt", elem_id="gauge-alt")
                    with gr.Column(scale=1, min_width=280):
                        decision_html = gr.HTML(elem_id="decision")
                        reasons_md = gr.Markdown(elem_id="reasons")
                waterfall_plot = gr.Plot(show_label=False, elem_id="waterfall", visible=False)
                waterfall_alt = gr.Markdown(elem_classes="chart-alt", elem_id="waterfall-alt")
            with gr.Tab(t(default_lang, "tab_profile"), id="profile") as tab_profile:
                profile_html = gr.HTML(elem_id="profile")
            with gr.Tab(t(default_lang, "tab_compare"), id="compare") as tab_compare:
                scores_plot = gr.Plot(show_label=False, elem_id="scores", visible=False)
                scores_alt = gr.Markdown(elem_classes="chart-alt", elem_id="scores-alt")
                feature_dd = gr.Dropdown(
                    choices=[], label=t(default_lang, "feature"), elem_id="feature"
                )
                dist_plot = gr.Plot(show_label=False, elem_id="distribution", visible=False)
                dist_alt = gr.Markdown(elem_classes="chart-alt", elem_id="distribution-alt")
                with gr.Row():
                    fx_dd = gr.Dropdown(
                        choices=[], label=t(default_lang, "feature_x"), elem_id="feature-x"
                    )
                    fy_dd = gr.Dropdown(
                        choices=[], label=t(default_lang, "feature_y"), elem_id="feature-y"
                    )
                scatter_plot = gr.Plot(show_label=False, elem_id="scatter", visible=False)
                scatter_alt = gr.Markdown(elem_classes="chart-alt", elem_id="scatter-alt")
                neighbours_html = gr.HTML(elem_id="neighbours")
            with gr.Tab(t(default_lang, "tab_whatif"), id="whatif") as tab_whatif:
                whatif_intro = gr.Markdown(t(default_lang, "whatif_intro"))
                inputs: dict[str, gr.Number] = {}
                field_errors: dict[str, gr.HTML] = {}
                with gr.Row():
                    for key, _ in WHATIF_FIELDS:
                        with gr.Column(min_width=160):
                            inputs[key] = gr.Number(
                                label=t(default_lang, key, cur=cur(default_lang)),
                                elem_id=f"whatif-{key}",
                            )
                            field_errors[key] = gr.HTML(elem_id=f"whatif-{key}-error")
                factors_md = gr.Markdown(elem_id="factors-intro")
                factor_sliders: list[gr.Slider] = []
                with gr.Row():
                    for index in range(FACTOR_SLOTS):
                        factor_sliders.append(
                            gr.Slider(
                                # No reset button: it would go back to the slot's first
                                # value, not this client's ("Reset" below does that).
                                visible=False,
                                elem_id=f"factor-{index}",
                                min_width=240,
                                buttons=[],
                            )
                        )
                factors_fixed = gr.Markdown(elem_id="factors-fixed")
                with gr.Row():
                    simulate_btn = gr.Button(
                        t(default_lang, "simulate"), variant="primary", elem_id="simulate"
                    )
                    reset_btn = gr.Button(t(default_lang, "reset"), elem_id="reset")
                sim_status = gr.HTML(elem_id="sim-status")
                with gr.Row():
                    with gr.Column(min_width=280):
                        sim_gauge = gr.Plot(show_label=False, elem_id="sim-gauge", visible=False)
                        sim_gauge_alt = gr.Markdown(
                            elem_classes="chart-alt", elem_id="sim-gauge-alt"
                        )
                    with gr.Column(min_width=280):
                        sim_decision = gr.HTML(elem_id="sim-decision")
                        sim_reasons = gr.Markdown(elem_id="sim-reasons")
                sim_waterfall = gr.Plot(show_label=False, elem_id="sim-waterfall", visible=False)
                sim_waterfall_alt = gr.Markdown(
                    elem_classes="chart-alt", elem_id="sim-waterfall-alt"
                )
            with gr.Tab(t(default_lang, "tab_model"), id="model") as tab_model:
                model_md = gr.Markdown(elem_id="model-card")
                importance_plot = gr.Plot(show_label=False, elem_id="importance", visible=False)
                importance_alt = gr.Markdown(elem_classes="chart-alt", elem_id="importance-alt")

        def plot(fig: Any) -> Any:
            """A chart, or its placeholder hidden (an empty Plotly box is an unnamed,
            focusable region for a screen reader)."""
            return gr.update(value=fig, visible=fig is not None)

        sim_outputs = [
            sim_status,
            sim_gauge,
            sim_gauge_alt,
            sim_decision,
            sim_reasons,
            sim_waterfall,
            sim_waterfall_alt,
        ]

        def sim_cleared(text: str = "") -> dict[Any, Any]:
            out: dict[Any, Any] = {o: "" for o in sim_outputs}
            out.update({sim_status: text, sim_gauge: plot(None), sim_waterfall: plot(None)})
            out.update({field_errors[k]: "" for k, _ in WHATIF_FIELDS})
            return out

        def chrome(code: str) -> dict[Any, Any]:
            """Every fixed word of the page in ``code`` (labels, tabs, buttons)."""
            out: dict[Any, Any] = {
                lang: code,
                title_md: t(code, "title"),
                intro_md: t(code, "intro"),
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
            }
            for key, _ in WHATIF_FIELDS:
                out[inputs[key]] = gr.update(label=t(code, key, cur=cur(code)))
            return out

        def cleared(code: str) -> dict[Any, Any]:
            """Nothing about any client: what a failed look-up leaves on screen. (Not the
            fixed words: re-drawing the recent list or the language choice would take the
            keyboard focus away from where the advisor is.)"""
            out: dict[Any, Any] = {}
            out.update(
                {
                    ctx: {},
                    suggest_html: views.suggestions(code),
                    gauge_plot: plot(None),
                    gauge_alt: "",
                    decision_html: "",
                    reasons_md: "",
                    waterfall_plot: plot(None),
                    waterfall_alt: "",
                    profile_html: "",
                    feature_dd: gr.update(label=t(code, "feature"), choices=[], value=None),
                    fx_dd: gr.update(label=t(code, "feature_x"), choices=[], value=None),
                    fy_dd: gr.update(label=t(code, "feature_y"), choices=[], value=None),
                    scores_plot: plot(None),
                    scores_alt: "",
                    dist_plot: plot(None),
                    dist_alt: "",
                    scatter_plot: plot(None),
                    scatter_alt: "",
                    neighbours_html: "",
                }
            )
            for key, _ in WHATIF_FIELDS:
                out[inputs[key]] = gr.update(label=t(code, key, cur=cur(code)), value=None)
            out.update({factors_md: "", factors_fixed: ""})
            out.update({slider: gr.update(visible=False) for slider in factor_sliders})
            out.update(sim_cleared())
            return out

        # ---- callbacks -------------------------------------------------------------------
        def render_client(client_id: int, code: str, score: dict[str, Any]) -> dict[Any, Any]:
            explanation = client.explanation(client_id, code)
            profile = client.profile(client_id, code)
            fields = [f for g in profile["groups"] for f in g["fields"]]
            values = {f["name"]: f["value"] for f in fields}
            labels = {f["name"]: views.tidy(f["label"]) for f in fields}
            units = {f["name"]: f["unit"] for f in fields}
            numeric = [(labels[n], n) for n, v in values.items() if views.number(v) is not None]
            contributions = [c["feature"] for c in explanation["contributions"]]
            numeric_top = [n for n in contributions if views.number(values.get(n)) is not None]
            feature = next((n for n in contributions if n in labels), fields[0]["name"])
            fx = numeric_top[0] if numeric_top else numeric[0][1]
            fy = numeric_top[1] if len(numeric_top) > 1 else numeric[1][1]
            gauge_fig, gauge_text = views.gauge(
                code,
                score["probability"],
                score["threshold"],
                score["decision"],
                t(code, "gauge_title", client_id=client_id),
            )
            water_fig, water_text = views.waterfall(code, explanation)
            meta = t(
                code,
                "decision_meta",
                version=score["model_version"],
                decision_id=score["decision_id"],
            ).replace("`", "")
            factors, factors_text = principal_factors(explanation, values, units, code)
            state = {
                "client_id": client_id,
                "score": score,
                "values": values,
                "labels": labels,
                "units": units,
                "shown_term": views.term(values),
                "factors": factors,
            }
            updates = cleared(code)  # nothing of a previous client survives
            updates.update(
                {
                    ctx: state,
                    # The label only: the field holds what the advisor typed, and a look-up
                    # typed while this one ran must find its own number there, not ours.
                    client_box: gr.update(label=t(code, "client_id")),
                    status: views.message(t(code, "loaded", client_id=client_id)),
                    gauge_plot: plot(gauge_fig),
                    gauge_alt: gauge_text,
                    decision_html: views.decision_html(
                        code, score["probability"], score["threshold"], score["decision"], meta
                    ),
                    reasons_md: views.reasons(code, explanation, values, units),
                    waterfall_plot: plot(water_fig),
                    waterfall_alt: water_text,
                    profile_html: views.profile_html(profile, code),
                    feature_dd: gr.update(
                        label=t(code, "feature"),
                        choices=[(lb, n) for n, lb in labels.items()],
                        value=feature,
                    ),
                    fx_dd: gr.update(label=t(code, "feature_x"), choices=numeric, value=fx),
                    fy_dd: gr.update(label=t(code, "feature_y"), choices=numeric, value=fy),
                    factors_md: f"## {t(code, 'factors_title')}\n\n"
                    + (
                        t(code, "factors_intro", share=percent(0.98, code, 0))
                        if factors
                        else t(code, "factors_intro_none")
                    ),
                    factors_fixed: factors_text,
                }
            )
            updates.update(reset_fields(state, code))
            for slot, factor in zip(factor_sliders, factors, strict=False):
                updates[slot] = gr.update(
                    visible=True,
                    label=views.slider_label(code, factor),
                    minimum=factor["minimum"],
                    maximum=factor["maximum"],
                    step=factor["step"],
                    value=factor["value"],
                )
            return updates

        def principal_factors(
            explanation: dict[str, Any], values: dict[str, Any], units: dict[str, str], code: str
        ) -> tuple[list[dict[str, Any]], str]:
            """Sliders for the client's principal factors that are application columns the
            API accepts (bounded to the population's realistic range), and one line naming
            the others: what the what-if cannot move (history aggregates, engineered
            features, categories) and what the application fields above already do."""
            limits = client.limits()
            in_fields = {column for _, column in WHATIF_FIELDS}
            sliders: list[dict[str, Any]] = []
            fixed: list[str] = []
            above: list[str] = []
            for item in explanation["contributions"][: views.PRINCIPAL_FACTORS]:
                name, label = item["feature"], views.tidy(item["label"])
                if name in in_fields:
                    above.append(label)
                    continue
                bounds = views.editable_bounds(name, values.get(name), limits)
                slider = None
                if bounds is not None:
                    try:
                        quantiles = client.population(name, code).get("quantiles", {})
                    except GatewayError as error:  # the slider only: the rest still shows
                        log.warning("no population range for %s: %s", name, error.kind)
                        quantiles = {}
                    slider = views.factor_slider(
                        name, label, units.get(name, ""), float(values[name]), quantiles, bounds
                    )
                if slider is None:
                    fixed.append(label)
                else:
                    sliders.append(slider)
            lines = []
            if above:
                lines.append(t(code, "factors_above", names=", ".join(above)))
            if fixed:
                lines.append(t(code, "factors_fixed", names=", ".join(fixed)))
            return sliders, "\n\n".join(lines)

        def reset_fields(state: dict[str, Any], code: str) -> dict[Any, Any]:
            values = state.get("values", {})
            out: dict[Any, Any] = {}
            for slot, factor in zip(factor_sliders, state.get("factors", []), strict=False):
                out[slot] = gr.update(value=factor["value"])
            for key, column in WHATIF_FIELDS:
                value = views.term(values) if column == "TERM" else views.number(values.get(column))
                if value is not None and column != "TERM":
                    value = round(value)  # whole currency units, as an advisor types them
                out[inputs[key]] = gr.update(label=t(code, key, cur=cur(code)), value=value)
            return out

        def failed(code: str, text: str) -> dict[Any, Any]:
            out = cleared(code)
            out[status] = views.message(text, error=True)
            return out

        def on_lookup(raw: str | float | None, code: str) -> dict[Any, Any]:
            """A new look-up replaces everything about the previous client, found or not."""
            text = str(raw if raw is not None else "").strip()
            if not text.isdigit() or int(text) <= 0 or int(text) >= 2**63:
                return failed(code, error_text(code, "invalid_id"))
            client_id = int(text)
            try:
                return render_client(client_id, code, client.score(client_id))
            except GatewayError as error:
                kind = "invalid_id" if error.kind == "invalid" else error.kind
                return failed(code, error_text(code, kind, client_id=client_id))
            except Exception:
                log.exception("dashboard look-up failed")
                return failed(code, error_text(code, "error"))

        def _distribution(state: dict[str, Any], feature: str, code: str) -> dict[Any, Any]:
            population = client.population(feature, code)
            value = state["values"].get(feature)
            names = {
                "repaid": t(code, "repaid"),
                "defaulted": t(code, "defaulted"),
                "hidden": t(code, "hidden"),
                "client": t(code, "client"),
            }
            label = views.tidy(population["label"])
            fig = charts.distribution(
                population,
                value,
                names,
                t(code, "dist_title", label=label),
                t(code, "dist_y"),
                views.axis(code, label, population["unit"]),
                lang=code,
                category_names={c: category(code, c) for c in population["categories"]},
            )
            n = formats.number(population["n"], code)
            if views.number(value) is None and not isinstance(value, str):
                alt = t(code, "dist_alt_missing", label=label, n=n)
            else:
                shown = views.value_text(value, state["units"].get(feature, ""), code)
                alt = t(code, "dist_alt", label=label, n=n, value=shown)
            hidden = views.hidden_note(code, sum(population.get("hidden") or []))
            return {dist_plot: plot(fig), dist_alt: f"{alt} {hidden}".strip()}

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
            client_point = (
                views.plotted(state["values"].get(fx), ux),
                views.plotted(state["values"].get(fy), uy),
            )
            fig = charts.scatter(
                points,
                client_point,
                names,
                t(code, "scatter_title", x=x_label, y=y_label, k=k),
                views.axis(code, x_label, ux),
                views.axis(code, y_label, uy),
                lang=code,
            )
            alt = t(code, "scatter_alt", x=x_label, y=y_label, k=k)
            if not any(x is not None and y is not None for x, y in points):
                alt += " " + t(code, "scatter_none")
            alt += "\n\n" + t(code, "scatter_note")
            return {
                scatter_plot: plot(fig),
                scatter_alt: alt,
                neighbours_html: views.neighbours_summary(code, k, d),
            }

        def part_failed(code: str, error: Exception, chart: Any, alt: Any) -> dict[Any, Any]:
            kind = error.kind if isinstance(error, GatewayError) else "error"
            if not isinstance(error, GatewayError):
                log.exception("dashboard comparison failed")
            text = t(code, "unavailable_part", message=error_text(code, kind, detail=""))
            return {chart: plot(None), alt: text}

        def on_compare(
            state: dict[str, Any],
            feature: str | None,
            fx: str | None,
            fy: str | None,
            code: str,
            scores: bool = True,
        ) -> dict[Any, Any]:
            # An empty dict would be read as one value for five outputs (Gradio's "Error"
            # badges on every output): nothing to change is said with gr.skip().
            out: dict[Any, Any] = {dist_alt: gr.skip()}
            if not state.get("client_id"):
                return out
            if scores:  # the client's place among all scores: once per look-up or language
                try:
                    real = state["score"]
                    fig, alt = views.score_distribution(
                        code, client.score_distribution(), real["probability"], real["threshold"]
                    )
                    out.update({scores_plot: plot(fig), scores_alt: alt})
                except Exception as error:
                    out.update(part_failed(code, error, scores_plot, scores_alt))
            # Each half fails alone: a missing histogram should not hide the neighbours.
            if feature:
                try:
                    out.update(_distribution(state, feature, code))
                except Exception as error:
                    out.update(part_failed(code, error, dist_plot, dist_alt))
            if fx and fy:
                try:
                    out.update(_scatter(state, fx, fy, code))
                except Exception as error:
                    out.update(part_failed(code, error, scatter_plot, scatter_alt))
            return out

        def on_feature(state: dict[str, Any], feature: str, code: str) -> dict[Any, Any]:
            return on_compare(state, feature, None, None, code, scores=False)

        def on_pair(state: dict[str, Any], fx: str, fy: str, code: str) -> dict[Any, Any]:
            return on_compare(state, None, fx, fy, code, scores=False)

        def check_fields(
            code: str, fields: dict[str, float | None], term: float | None
        ) -> dict[str, str]:
            """Per what-if field, what is wrong with it (in words), by the ranges the
            gateway's own schema accepts; empty when every value can be sent."""
            limits = client.limits()
            errors: dict[str, str] = {}
            for key, column in WHATIF_FIELDS:
                value = term if column == "TERM" else fields.get(column)
                if value is None:
                    if column in REQUIRED:
                        errors[key] = t(code, "field_required")
                    continue
                low, high = limits.get(views.TYPED.get(column, ""), (None, None))
                if column == "TERM":
                    low, high = 1.0, 1200.0
                elif low is None:
                    low = 0.0
                if (low is not None and value < low) or (high is not None and value > high):
                    shown = formats.money if column in MONEY else formats.number
                    # Whole units inside the range: "from 6,413" when the minimum is 6,412.5.
                    top = shown(math.floor(high), code) if high is not None else "∞"
                    bottom = shown(math.ceil(low or 0.0), code)
                    errors[key] = t(code, "field_range", low=bottom, high=top)
            return errors

        def on_simulate(state: dict[str, Any], code: str, *edited: float | None) -> dict:
            if not state.get("client_id"):
                return sim_cleared(views.message(t(code, "sim_none"), error=True))
            typed, moved = edited[: len(WHATIF_FIELDS)], edited[len(WHATIF_FIELDS) :]
            fields = dict(zip([column for _, column in WHATIF_FIELDS], typed, strict=True))
            term = fields.pop("TERM")
            # The term is credit / annuity: when the advisor changed the term shown last, it
            # sets the annuity; otherwise it follows the credit and annuity entered.
            shown = state.get("shown_term")
            credit = fields.get("AMT_CREDIT")
            if term and shown and credit and term > 0 and abs(term - shown) >= 0.05:
                fields["AMT_ANNUITY"] = round(credit / term, 2)
            errors = check_fields(code, fields, term)
            if not errors:  # the annuity the term gives must itself be acceptable
                annuity_error = check_fields(code, {**fields, "TERM": None}, None).get("annuity")
                if annuity_error:
                    errors["term"] = annuity_error
            if errors:
                out = sim_cleared(views.message(t(code, "fields_invalid"), error=True))
                for key, text in errors.items():
                    out[field_errors[key]] = views.field_error(text)
                return out
            new_term = views.term(fields)
            factors = views.factor_edits(state.get("factors", []), list(moved))
            log.info("what-if simulated: factors moved %s", sorted(factors))
            application = views.whatif_application(
                state["values"], state["client_id"], {**fields, **factors}
            )
            try:
                score = client.simulate(application)
                explanation = client.explain_application(application, code)
            except GatewayError as error:
                if error.kind != "invalid":
                    return sim_cleared(views.message(error_text(code, error.kind), error=True))
                # Our checks and the gateway's disagree: worded, never its raw detail.
                log.warning("what-if refused by the gateway: %s", error.detail)
                return sim_cleared(views.message(t(code, "fields_invalid"), error=True))
            except Exception:
                log.exception("what-if failed")
                return sim_cleared(views.message(error_text(code, "error"), error=True))
            real = state["score"]
            fig, alt = views.gauge(
                code,
                score["probability"],
                score["threshold"],
                score["decision"],
                f"{t(code, 'sim_banner')}: {t(code, 'gauge_title', client_id=state['client_id'])}",
            )
            water_fig, water_alt = views.waterfall(code, explanation)
            change = t(
                code,
                "sim_change",
                new=percent(score["probability"], code),
                old=percent(real["probability"], code),
                word=t(code, f"outcome_{score['decision']}"),
            )
            out = sim_cleared()
            out.update(
                {
                    sim_status: f'<div class="sim-banner" role="status">⚠ {t(code, "sim_banner")}'
                    f"</div>",
                    sim_gauge: plot(fig),
                    sim_gauge_alt: alt,
                    sim_decision: views.decision_html(
                        code,
                        score["probability"],
                        score["threshold"],
                        score["decision"],
                        t(code, "sim_banner"),
                    ),
                    sim_reasons: change
                    + "\n\n"
                    + views.reasons(code, explanation, state["values"], state["units"]),
                    sim_waterfall: plot(water_fig),
                    sim_waterfall_alt: water_alt,
                    inputs["annuity"]: fields.get("AMT_ANNUITY"),
                    inputs["term"]: new_term,
                    ctx: {**state, "shown_term": new_term},
                }
            )
            return out

        def on_reset(state: dict[str, Any], code: str) -> dict[Any, Any]:
            out = sim_cleared(views.message(t(code, "reset_done")))
            out.update(reset_fields(state, code))
            if state.get("values"):
                out[ctx] = {**state, "shown_term": views.term(state["values"])}
            return out

        def on_recent(code: str) -> dict[Any, Any]:
            seen: dict[int, str] = {}
            try:
                decisions = client.recent_decisions(100)
            except GatewayError as error:
                return {status: views.message(error_text(code, error.kind), error=True)}
            for item in decisions:
                cid = item.get("client_id")
                if cid is None or cid in seen or item.get("simulation"):
                    continue
                when = formats.when(datetime.fromisoformat(str(item["created_at"])), code)
                seen[cid] = t(
                    code, "recent_item", cid=cid, word=t(code, item["decision"]), when=when
                )
                if len(seen) >= 20:
                    break
            return {
                recent: gr.update(
                    choices=[(label, str(cid)) for cid, label in seen.items()], value=None
                )
            }

        def on_model(code: str) -> dict[Any, Any]:
            try:
                card = client.model(code)
            except GatewayError as error:
                return {
                    model_md: error_text(code, error.kind),
                    importance_plot: plot(None),
                    importance_alt: "",
                }
            names = METRIC_NAMES[code]
            metrics = "\n".join(
                f"- {names[key]}: {views.metric_text(key, value, code)}"
                for key, value in card["metrics"].items()
                if key in names
            )
            title = t(code, "model_title", name=card["model_name"], version=card["model_version"])
            ratio = card["cost_false_negative"] / max(card["cost_false_positive"], 1e-9)
            text = "\n\n".join(
                [
                    f"## {title}",
                    t(
                        code,
                        "model_text",
                        thr=percent(card["threshold"], code),
                        fn=formats.number(ratio, code, 0 if ratio == round(ratio) else 1),
                        n=formats.number(card["n_features"], code),
                    ),
                    f"**{t(code, 'metrics')}**",
                    metrics,
                ]
            )
            rows = card["global_importance"] or []
            if not rows:
                return {
                    model_md: text,
                    importance_plot: plot(None),
                    importance_alt: t(code, "importance_none"),
                }
            fig, alt = views.importance(code, rows)
            return {model_md: text, importance_plot: plot(fig), importance_alt: alt}

        def on_language(choice: str, state: dict[str, Any]) -> dict[Any, Any]:
            """Everything again in the new language: words, charts, texts (re-worded from
            the gateway, not re-scored: no second decision is logged)."""
            code = LANGS.get(choice, "en")
            out = chrome(code)
            if state.get("client_id"):
                try:
                    out.update(render_client(state["client_id"], code, state["score"]))
                except GatewayError as error:
                    out.update(failed(code, error_text(code, error.kind)))
                except Exception:
                    log.exception("dashboard language switch failed")
                    out.update(failed(code, error_text(code, "error")))
                return out
            out.update(cleared(code))
            out[status] = views.message(t(code, "empty"))
            return out

        def on_suggest(raw: str | None, code: str) -> str:
            """The client numbers starting with the digits typed so far (at most 10)."""
            prefix = str(raw or "").strip()
            # Only digits are searched (the gateway refuses the rest), and no longer than a
            # client number can be.
            if not prefix.isdigit() or len(prefix) > 19:
                return views.suggestions(code, prefix)
            try:
                found = client.search_clients(prefix, views.MAX_SUGGESTIONS)["clients"]
            except GatewayError as error:  # no list, the field still works
                log.warning("client search failed: %s", error.kind)
                found = []
            return views.suggestions(code, prefix, [int(c) for c in found])

        def on_open(code: str, wanted: str | None) -> dict[Any, Any]:
            """``?client=100002`` in the address opens that client once signed in (and puts
            its number in the field)."""
            if not wanted:
                return {status: gr.skip()}
            out = on_lookup(wanted, code)
            out[client_box] = gr.update(label=t(code, "client_id"), value=wanted)
            return out

        compare_in = [ctx, feature_dd, fx_dd, fy_dd, lang]
        compare_out = [
            scores_plot,
            scores_alt,
            dist_plot,
            dist_alt,
            scatter_plot,
            scatter_alt,
            neighbours_html,
        ]
        everything = [
            ctx,
            lang,
            status,
            title_md,
            intro_md,
            lang_radio,
            sign_out,
            client_box,
            suggest_html,
            lookup_btn,
            recent,
            refresh_btn,
            tab_decision,
            tab_profile,
            tab_compare,
            tab_whatif,
            tab_model,
            gauge_plot,
            gauge_alt,
            decision_html,
            reasons_md,
            waterfall_plot,
            waterfall_alt,
            profile_html,
            feature_dd,
            fx_dd,
            fy_dd,
            *compare_out,
            whatif_intro,
            *inputs.values(),
            *field_errors.values(),
            factors_md,
            *factor_sliders,
            factors_fixed,
            simulate_btn,
            reset_btn,
            *sim_outputs,
        ]
        model_out = [model_md, importance_plot, importance_alt]

        # Every look-up, typed or chosen (suggestions, the recent list), is a click of the
        # look-up button or Enter in the field. Its comparison follows as a second step,
        # so the decision shows without waiting for the charts. "always_last": a look-up
        # asked for while one runs is run after it (Gradio's default drops it, and the
        # first client stayed on screen under the second one's number).
        comparisons = []
        for trigger in (lookup_btn.click, client_box.submit):
            step = trigger(
                on_lookup, [client_box, lang], everything, trigger_mode="always_last"
            ).then(on_compare, compare_in, compare_out)
            step.then(None, client_box, None, js=CLIENT_URL_JS)
            comparisons.append(step)
        # .change, not .input: Gradio's dropdown sends "input" again each time the focus
        # leaves it (which looked the client on screen up again, putting back the what-if
        # fields being typed) and twice for one choice; "change" comes once per new value.
        recent.change(None, recent, recent, js=PICK_JS)
        refresh_btn.click(on_recent, lang, [status, recent])
        client_box.input(
            on_suggest,
            [client_box, lang],
            suggest_html,
            trigger_mode="always_last",  # fast typing: one search for the latest text
            show_progress="hidden",
        )
        feature_dd.input(on_feature, [ctx, feature_dd, lang], compare_out)
        for dropdown in (fx_dd, fy_dd):
            dropdown.input(on_pair, [ctx, fx_dd, fy_dd, lang], compare_out)
        simulate_btn.click(on_simulate, [ctx, lang, *inputs.values(), *factor_sliders], everything)
        reset_btn.click(on_reset, [ctx, lang], everything)
        step = lang_radio.input(on_language, [lang_radio, ctx], everything, js=LANGUAGE_JS).then(
            on_compare, compare_in, compare_out
        )
        step.then(on_model, lang, model_out).then(on_recent, lang, [status, recent])
        comparisons.append(step)
        for tab in (tab_decision, tab_profile, tab_compare, tab_whatif, tab_model):
            # Plotly sizes a figure drawn in a hidden tab to nothing; a resize on showing the
            # tab makes it fill its box again.
            tab.select(None, None, None, js=RESIZE_JS)
        demo.load(
            None,
            None,
            None,
            js=f"() => window.uiLanguage && window.uiLanguage({json.dumps(default_lang)})",
        )
        comparisons.append(
            demo.load(on_model, lang, model_out)
            .then(on_recent, lang, [status, recent])
            .then(on_open, [lang, client_box], everything, js=OPEN_JS)
            .then(on_compare, compare_in, compare_out)
        )
        # A comparison still being drawn when the advisor looks another client up (or
        # switches language) is dropped: drawn late, it would show the previous client's
        # charts beside the new client, or after a failed look-up had emptied the page.
        for trigger in (lookup_btn.click, client_box.submit, lang_radio.input):
            trigger(None, None, None, cancels=comparisons)
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
    client = GatewayClient(
        settings.gateway_url, settings.api_key(), settings.timeout_seconds, advisor=current_advisor
    )
    demo = build(settings, client)
    middleware = Middleware(page.PageLanguage, default_lang=settings.default_lang)
    demo.queue(default_concurrency_limit=8)
    # Gradio's queue polls for work every millisecond (and for progress every 10 ms) on
    # Linux: ~7 % of a core while nobody uses the dashboard, taken from the scoring services
    # on a shared node. 20 ms is still well below what an advisor notices.
    demo._queue.sleep_when_free = QUEUE_POLL_SECONDS
    demo._queue.progress_update_sleep_when_free = QUEUE_POLL_SECONDS
    if freeze_heap:  # the process's own start-up; tests leave theirs alone
        freeze_startup_objects()
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        auth=sign_in,
        auth_message=page.sign_in_message(),
        app_kwargs={"middleware": [middleware]},
        show_error=False,  # internals stay in the server log
        theme=THEME,
        css=CSS,
        head=HEAD,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        footer_links=[],
        prevent_thread_lock=prevent_thread_lock,
        quiet=True,
    )
    return demo
