"""The datasheet page: HTML + CSS + plain JavaScript that renders the JSON ``pipelines.browse`` embeds.

Dataset text (questions, traces, details) is untrusted: the script only ever inserts it as text nodes
(``el()`` appends strings with ``Node.append``, never ``innerHTML``), and the Content-Security-Policy
allows no network at all (images are ``data:`` URIs), so the page opens from disk and reaches nothing.
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__ · Sightline datasheet</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { background: #243447; color: #fff; padding: 12px 24px; }
  header h1 { margin: 0; font-size: 20px; } header .meta { opacity: .8; font-size: 12px; }
  nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 6px 24px; z-index: 2; }
  nav a { margin-right: 14px; color: #245; text-decoration: none; font-weight: 600; }
  section { background: #fff; margin: 14px 24px; padding: 10px 18px 16px; border: 1px solid #e3e3e3; border-radius: 6px; }
  h2 { font-size: 17px; margin: 6px 0 10px; } h3 { font-size: 14px; margin: 14px 0 6px; }
  table { border-collapse: collapse; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; text-align: left; }
  th { background: #f3f5f7; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .bar { height: 12px; background: #4477aa; border-radius: 2px; display: inline-block; vertical-align: middle; }
  .bar.wrong { background: #ee6677; } .bar.correct { background: #228833; } .bar.rej { background: #cc6677; }
  .ok { color: #1a7f37; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
  img.thumb { width: 96px; height: 96px; object-fit: contain; background: #eee; border: 1px solid #ddd; image-rendering: auto; }
  .noimg { display: inline-block; width: 96px; height: 96px; background: #f0f0f0; color: #888; font-size: 11px;
           text-align: center; line-height: 1.3; padding-top: 30px; box-sizing: border-box; border: 1px dashed #ccc; }
  .text { white-space: pre-wrap; max-width: 520px; font-size: 13px; }
  .small { font-size: 12px; color: #555; } .mono { font-family: ui-monospace, monospace; font-size: 12px; }
  .pair { display: flex; gap: 16px; flex-wrap: wrap; margin: 6px 0 12px; }
  .card { border: 1px solid #e5e5e5; border-radius: 5px; padding: 8px; display: flex; gap: 10px; max-width: 560px; }
  .filters select { margin-right: 10px; } .tabs button { margin-right: 6px; padding: 4px 10px; cursor: pointer; }
  .tabs button.on { background: #243447; color: #fff; border-color: #243447; }
  .grid { display: flex; flex-wrap: wrap; gap: 10px; }
  pre { background: #f6f8fa; padding: 8px; overflow: auto; max-height: 420px; font-size: 12px; }
</style>
</head>
<body>
<header><h1 id="title">__TITLE__</h1><div class="meta" id="meta"></div></header>
<nav><a href="#funnel">Funnel</a><a href="#rejects">Rejects</a><a href="#samples">Samples</a>
<a href="#difficulty">Difficulty</a><a href="#lineage">Lineage</a><a href="#teachers">Teachers &amp; config</a></nav>
<section id="funnel"><h2>Funnel and accounting</h2></section>
<section id="rejects"><h2>Rejects by stage and reason</h2></section>
<section id="samples"><h2>Samples</h2></section>
<section id="difficulty"><h2>Difficulty and trace lengths</h2></section>
<section id="lineage"><h2>Lineage</h2></section>
<section id="teachers"><h2>Teachers and config</h2></section>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k === "style") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
const fmt = (x) => (x === null || x === undefined) ? "" :
  (typeof x === "number" && !Number.isInteger(x)) ? x.toFixed(3) : String(x);
const num = (x) => (x === null || x === undefined) ? "" : Number(x).toLocaleString("en-US");
function img(key, alt) {
  const uri = key && D.images[key];
  return uri ? el("img", {class: "thumb", src: uri, alt: alt || "image"})
             : el("span", {class: "noimg"}, key ? "image not decodable" : "no image stored");
}
function bar(value, max, cls) {
  const w = max > 0 ? Math.max(1, Math.round(260 * value / max)) : 0;
  return el("span", {class: "bar " + (cls || ""), style: "width:" + w + "px"});
}
function table(head, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
            el("tbody", {}, rows));
}
const td = (x, cls) => el("td", {class: cls}, x);

// ---- header
(function header() {
  const m = D.meta;
  document.getElementById("meta").append(
    `${m.root} · version ${m.version}` + (m.parent !== null ? ` (parent v${m.parent})` : "") +
    ` · created ${m.created_at} · git ${(m.git_commit || "unknown").slice(0, 10)} · schema ${m.schema_version}` +
    ` · ${m.rows_per_table} sampled rows per table · page built ${m.built_at}`);
})();

// ---- funnel
(function funnel() {
  const s = document.getElementById("funnel"), f = D.funnel, a = f.accounting;
  const max = Math.max(1, ...f.stages.map((x) => x.in || 0));
  s.append(table(["stage", "in", "out", "rejected", "duplicates", ""], f.stages.map((x) =>
    el("tr", {"data-stage": x.stage}, td(x.stage), td(num(x.in), "n"), td(num(x.out), "n"),
       td(num(x.rejected), "n"), td(num(x.duplicates), "n"), td(bar(x.out || 0, max))))));
  if ("rows_in" in a) {
    const ok = a.rows_in === a.rows_written + a.rows_rejected + a.rows_duplicate;
    s.append(el("p", {id: "accounting"}, `rows in ${num(a.rows_in)} = written ${num(a.rows_written)} + rejected `
      + `${num(a.rows_rejected)} + duplicates ${num(a.rows_duplicate)} `,
      el("span", {class: ok ? "ok" : "bad"}, ok ? "balanced" : "DOES NOT BALANCE")));
  } else {
    s.append(el("p", {id: "accounting"}, "The manifest records no accounting (a version not written by the pipeline)."));
  }
  s.append(el("h3", {}, "Rows per table"), table(["table", "rows"], Object.entries(f.tables).map(([t, n]) =>
    el("tr", {}, td(t), td(num(n), "n")))));
  const other = Object.entries(f.other).filter(([k]) => k !== "passes");
  if (other.length) s.append(el("h3", {}, "Other counts"), table(["stage", "counts"], other.map(([k, v]) =>
    el("tr", {}, td(k), td(Object.entries(v).map(([a, b]) => `${a}=${fmt(b)}`).join("  "), "mono")))));
})();

// ---- rejects
(function rejects() {
  const s = document.getElementById("rejects");
  if (!D.rejects.length) { s.append(el("p", {}, "No rejected rows in this version.")); return; }
  const max = Math.max(...D.rejects.map((r) => r.rows));
  s.append(table(["stage", "reason", "rows", ""], D.rejects.map((r) =>
    el("tr", {}, td(r.stage), td(r.reason), td(num(r.rows), "n"), td(bar(r.rows, max, "rej"))))));
  for (const r of D.rejects) {
    s.append(el("h3", {}, `${r.stage} / ${r.reason}: ${num(r.rows)} row(s), ${r.examples.length} shown`));
    for (const x of r.examples) {
      const own = el("div", {class: "card reject-example"}, img(x.image, "rejected row"),
        el("div", {}, el("div", {class: "small"}, `rejected ${x.id} · ${x.source}:${x.source_id}`),
          el("div", {class: "text"}, x.question || "(no question recorded)"),
          el("div", {class: "small mono"}, x.detail || "")));
      const pair = el("div", {class: "pair"}, own);
      if (x.kept) pair.append(el("div", {class: "card kept"}, img(x.kept.image, "kept row"),
        el("div", {}, el("div", {class: "small"}, `kept ${x.kept.id} (the row it duplicates)`),
          el("div", {class: "text"}, x.kept.question || ""), el("div", {class: "small"}, `gold: ${x.kept.answer}`))));
      s.append(pair);
    }
  }
})();

// ---- samples: one panel per table, filters over embedded rows
const FILTERS = {sft: ["task", "level", "source", "verdict"], traces: ["task", "level", "source", "verdict", "status"],
                 rl: ["task", "level", "source", "answer_type"], val: ["task", "level", "source", "answer_type"],
                 test: ["task", "level", "source", "answer_type"]};
function sampleRow(table, r) {
  const attrs = {};
  for (const f of FILTERS[table]) attrs["data-" + f] = fmt(r[f]);
  const id = el("div", {class: "small mono"}, r.id);
  if (table === "sft" || table === "traces") {
    return el("tr", attrs, td(img(r.image, r.question)), td([el("div", {class: "text"}, r.question), id]),
      td(el("div", {class: "text"}, r.caption || "")), td(el("div", {class: "text"}, r.trace || "")),
      td([el("div", {class: r.verdict === "correct" ? "ok" : "bad"}, r.verdict || ""),
          el("div", {class: "small"}, `gold ${r.gold ?? ""} · read ${r.extracted ?? ""}`),
          el("div", {class: "small"}, r.why || ""), el("div", {class: "small"}, r.status || ""),
          el("div", {class: "small"}, r.teacher || "")]),
      td([el("div", {}, r.task), el("div", {class: "small"}, `level ${fmt(r.level)} · ${r.source}`)]));
  }
  return el("tr", attrs, td(img(r.image, r.question)),
    td([el("div", {class: "text"}, r.question), r.choices ? el("div", {class: "small"}, r.choices.join(" | ")) : null, id]),
    td(r.gold), td(r.answer_type || ""),
    td(r.pass_rate === null ? el("span", {class: "small"}, "not scored") : `${fmt(r.pass_rate)} (k=${r.n_rollouts})`),
    td([el("div", {}, r.task), el("div", {class: "small"}, `level ${fmt(r.level)} · ${r.source}`)]));
}
(function samples() {
  const s = document.getElementById("samples");
  const tabs = el("div", {class: "tabs"}), panels = [];
  for (const [name, t] of Object.entries(D.samples)) {
    const head = (name === "sft" || name === "traces")
      ? ["image", "question", "caption", "trace", "verdict", "task"]
      : ["image", "prompt", "gold", "answer type", "pass rate", "task"];
    const rows = t.rows.map((r) => sampleRow(name, r));
    const count = el("span", {class: "small count"});
    const selects = FILTERS[name].map((f) => {
      const values = [...new Set(t.rows.map((r) => fmt(r[f])))].sort();
      return el("label", {}, f + " ", el("select", {"data-filter": f},
        el("option", {value: ""}, "all"), values.map((v) => el("option", {value: v}, v === "" ? "(none)" : v))));
    });
    const update = () => {
      let shown = 0;
      for (const tr of rows) {
        const keep = selects.every((l) => { const sel = l.querySelector("select");
          return sel.value === "" || tr.getAttribute("data-" + sel.dataset.filter) === sel.value; });
        tr.hidden = !keep; shown += keep ? 1 : 0;
      }
      count.textContent = `showing ${shown} of ${t.rows.length} sampled rows (table has ${num(t.total)})`;
    };
    selects.forEach((l) => l.querySelector("select").addEventListener("change", update));
    const panel = el("div", {id: "samples-" + name, class: "panel"}, el("div", {class: "filters"}, selects, count),
                     table(head, rows));
    panels.push(panel);
    const btn = el("button", {type: "button", "data-table": name}, `${name} (${num(t.total)})`);
    btn.addEventListener("click", () => {
      panels.forEach((p) => { p.hidden = p !== panel; });
      tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === btn));
    });
    tabs.append(btn);
    update();
  }
  s.append(tabs, ...panels);
  tabs.querySelector("button").click();
})();

// ---- difficulty and trace lengths
(function difficulty() {
  const s = document.getElementById("difficulty"), d = D.difficulty;
  s.append(el("h3", {}, "Pass rate of the policy over k rollouts (rl prompts)"));
  const max = Math.max(1, ...d.histogram.map((h) => h.prompts));
  s.append(table(["pass rate", "prompts", "mean p(1-p)", ""], d.histogram.map((h) =>
    el("tr", {}, td(h.pass_rate), td(num(h.prompts), "n"), td(fmt(h.mean_variance), "n"), td(bar(h.prompts, max))))));
  if (!d.scored) s.append(el("p", {class: "small"}, "Not scored yet: `sightline difficulty --data DIR --model PATH` "
    + "writes a child version with each rl prompt's pass rate."));
  for (const [name, list] of [["Hardest prompts", d.hardest], ["Easiest prompts", d.easiest]]) {
    if (!list.length) continue;
    s.append(el("h3", {}, name), el("div", {class: "grid"}, list.map((r) => el("div", {class: "card"}, img(r.image, r.question),
      el("div", {}, el("div", {class: "text"}, r.question), el("div", {class: "small"},
        `pass rate ${fmt(r.pass_rate)} (${r.n_correct}/${r.n_rollouts}) · gold ${r.gold} · ${r.task}`))))));
  }
  s.append(el("h3", {}, "Trace lengths (characters) by verdict"));
  s.append(table(["verdict", "traces", "mean", "median", "p90", "max"], d.lengths.map((l) =>
    el("tr", {}, td(l.verdict), td(num(l.traces), "n"), td(fmt(l.mean), "n"), td(fmt(l.median), "n"),
       td(fmt(l.p90), "n"), td(num(l.max), "n")))));
  const bmax = Math.max(1, ...d.length_bins.map((b) => b.n));
  s.append(table(["length", "verdict", "traces", ""], d.length_bins.map((b) =>
    el("tr", {}, td(`${b.lo}-${b.lo + d.bin_width - 1}`), td(b.verdict), td(num(b.n), "n"), td(bar(b.n, bmax, b.verdict))))));
})();

// ---- lineage
(function lineage() {
  const s = document.getElementById("lineage");
  s.append(table(["version", "relation", "made by", "created", "teachers", "what changed"], D.lineage.map((v) =>
    el("tr", {"data-version": v.version}, td(el("b", {}, `v${v.version}`)), td(v.relation), td(v.stage),
       td(el("span", {class: "small"}, v.created_at)),
       td(el("div", {class: "small"}, Object.entries(v.teachers).map(([r, m]) => `${r}: ${m}`).join("\n"))),
       td(el("div", {class: "small mono text"}, v.parent === null
         ? Object.entries(v.tables || {}).map(([t, n]) => `${t}=${n}`).join(" ")
         : [v.stage_counts ? Object.entries(v.stage_counts).map(([k, x]) => `${k}=${fmt(x)}`).join(" ") : "",
            ...Object.entries(v.changed).map(([t, [a, b]]) => `${t}: ${a} -> ${b}`)].join("\n")))))));
})();

// ---- teachers and config
(function teachers() {
  const s = document.getElementById("teachers");
  const rows = Object.entries(D.teachers).map(([role, t]) => (t && typeof t === "object")
    ? el("tr", {}, td(role), td(t.backend || ""), td(t.model || ""), td(t.prompt_version || ""),
         td(el("span", {class: "mono"}, JSON.stringify(t.sampling || {}))))
    : el("tr", {}, td(role), td(""), td(String(t)), td(""), td("")));
  s.append(table(["role", "backend", "model", "prompt version", "sampling"], rows));
  s.append(el("details", {}, el("summary", {}, "resolved config of this version"),
    el("pre", {}, JSON.stringify(D.config, null, 2))));
})();
document.body.setAttribute("data-rendered", "1");
</script>
</body>
</html>
"""
