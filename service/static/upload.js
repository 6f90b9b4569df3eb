"use strict";
// The upload page: plain fetch() calls to this service's JSON API (docs/api.md), each with
// `Authorization: Bearer <key>` when a key is typed in. A diagnosis is two requests, the JSON
// report and then the same request with `Accept: image/png` for its figure.

const KEY_STORAGE = "collapse-lab-api-key";
const $ = (id) => document.getElementById(id);
let figureUrl = null; // the blob: URL shown in #figure, revoked when replaced
let listing = 0; // the latest loadLists call: an older one still in flight fills nothing

// Where the API lives: relative to this page, so the service may sit behind a path prefix.
function apiUrl(path) {
  return new URL(path, window.location.href).href;
}

// A failed call: the problem+json `detail` (docs/api.md, "Problem types") with its status.
class ApiProblem extends Error {}

async function problemText(response) {
  let text = `${response.status} ${response.statusText}`;
  try {
    const problem = await response.json();
    if (problem && problem.detail) {
      text = `${response.status} ${problem.title || response.statusText}: ${problem.detail}`;
    }
  } catch (_) {
    // not JSON (a proxy's HTML page, say): the status line is all there is
  }
  if (response.status === 401) text += "\nType the service's API key in the box above.";
  return text;
}

async function call(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const key = $("api-key").value.trim();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(apiUrl(path), { ...init, headers });
  if (!response.ok) throw new ApiProblem(await problemText(response));
  return response;
}

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof ApiProblem ? error.message : `Request failed: ${error}`;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function fillSelect(select, items, label) {
  for (const item of items) {
    const option = new Option(label(item), item.name);
    option.disabled = !item.ready;
    select.add(option);
  }
}

// The model and reference lists; after a key is entered they are loaded again.
async function loadLists() {
  const mine = ++listing;
  clearError();
  const models = $("model");
  const references = $("reference");
  models.length = 0;
  references.length = 1; // keep "none"
  try {
    const [modelList, referenceList] = await Promise.all([
      call("v1/models?view=compact").then((r) => r.json()),
      call("v1/references").then((r) => r.json()),
    ]);
    if (mine !== listing) return;
    const notReady = (item) => (item.ready ? "" : " - not ready");
    fillSelect(models, modelList.models, (m) => `${m.name} (${m.kind})${notReady(m)}`);
    fillSelect(references, referenceList.references, (r) => `${r.name}${notReady(r)}`);
    const firstReady = [...references.options].find((o) => o.value && !o.disabled);
    if (firstReady) references.value = firstReady.value;
  } catch (error) {
    if (mine === listing) showError(error);
  }
}

function number(value, digits = 3) {
  if (value === null || value === undefined) return "n/a";
  return Number.isInteger(value) ? String(value) : value.toPrecision(digits);
}

function showModes(report) {
  const modes = report.modes;
  if (!modes) {
    $("covered").textContent = "n/a (the reference has no modes)";
    $("covered-expected").textContent = "";
    $("missing").textContent = "n/a";
    $("starved").textContent = "n/a";
    return;
  }
  const expected = report.expected_covered_ideal;
  const spread = report.expected_covered_ideal_std;
  $("covered").textContent = `${modes.covered} of ${modes.total}`;
  $("covered-expected").textContent = `(an exact sampler: ${number(expected)} ± ${number(spread)})`;
  $("missing").textContent = modes.missing.length ? modes.missing.join(", ") : "none";
  const starved = modes.starved || [];
  $("starved").textContent = starved.length ? starved.join(", ") : "none";
}

function showNumbers(report, source) {
  $("source").textContent = source;
  $("n-samples").textContent = String(report.n_samples);
  showModes(report);
  $("kl").textContent =
    report.kl === null || report.kl === undefined
      ? "n/a"
      : `${number(report.kl)} nats (an exact sampler: ${number(report.kl_expected_ideal)} ± ` +
        `${number(report.kl_expected_ideal_std)})`;
  $("high-quality").textContent = number(report.high_quality_fraction);
  const manifold = report.features && report.features.manifold;
  $("coverage").textContent =
    manifold && manifold.coverage !== undefined
      ? `${number(manifold.coverage)} (two samples of one distribution: ` +
        `${number(manifold.coverage_expected_identical)})`
      : "n/a";
  $("duplicates").textContent = number(report.duplicates && report.duplicates.exact_fraction);
}

function showReport(report, source) {
  const verdict = report.verdict;
  $("verdict").textContent = verdict.status;
  $("verdict").className = verdict.status;
  const reasons = $("reasons");
  const item = (text) => Object.assign(document.createElement("li"), { textContent: text });
  reasons.replaceChildren(...verdict.reasons.map(item));
  showNumbers(report, source);
  $("report").textContent = JSON.stringify(report, null, 2);
  $("result").hidden = false;
}

async function showFigure(response) {
  const blob = await response.blob();
  if (figureUrl) URL.revokeObjectURL(figureUrl);
  figureUrl = URL.createObjectURL(blob);
  $("figure").src = figureUrl;
}

// Runs one diagnosis (`work`), with the buttons off and the old result cleared meanwhile.
async function run(message, work) {
  clearError();
  $("result").hidden = true;
  $("verdict").textContent = "";
  $("figure").removeAttribute("src");
  $("progress").textContent = message;
  for (const button of document.querySelectorAll("form button")) button.disabled = true;
  try {
    await work();
    $("progress").textContent = "";
  } catch (error) {
    $("progress").textContent = "";
    showError(error);
  } finally {
    for (const button of document.querySelectorAll("form button")) button.disabled = false;
  }
}

function uploadForm(file, reference) {
  const form = new FormData();
  form.append("file", file, file.name);
  if (reference) form.append("reference", reference);
  return form;
}

async function diagnoseFile(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) {
    showError(new ApiProblem("Choose or drop a batch file first."));
    return;
  }
  const reference = $("reference").value;
  const post = (accept) => ({
    method: "POST",
    body: uploadForm(file, reference),
    headers: { Accept: accept },
  });
  await run(`Diagnosing ${file.name}...`, async () => {
    const report = await (await call("v1/diagnostics", post("application/json"))).json();
    showReport(report, `${file.name} against ${reference || "no reference"}`);
    await showFigure(await call("v1/diagnostics", post("image/png")));
  });
}

// The JSON body of /diagnose; the seed goes in as typed digits, so seeds beyond 2^53 (which a
// JavaScript number would round to another seed) stay exact.
function generateBody(n, seed) {
  return seed === "" ? `{"n": ${n}}` : `{"n": ${n}, "seed": ${seed}}`;
}

async function generate(event) {
  event.preventDefault();
  const name = $("model").value;
  const n = $("n").value.trim();
  const seed = $("seed").value.trim();
  if (!name || !/^\d+$/.test(n) || !/^\d*$/.test(seed)) {
    const message = "Choose a model, a whole number of samples and a whole seed (or none).";
    showError(new ApiProblem(message));
    return;
  }
  const path = `v1/models/${encodeURIComponent(name)}/diagnose`;
  const post = (seedText, accept) => ({
    method: "POST",
    body: generateBody(n, seedText),
    headers: { "Content-Type": "application/json", Accept: accept },
  });
  await run(`Generating ${n} samples from ${name}...`, async () => {
    const report = await (await call(path, post(seed, "application/json"))).json();
    // The figure of the same samples: the seed the service drew (below 2^53) when none was given.
    const used = seed === "" ? String(report.seed) : seed;
    showReport(report, `${name} version ${report.version}, seed ${used}`);
    await showFigure(await call(path, post(used, "image/png")));
  });
}

function setUpDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) $("file").files = event.dataTransfer.files;
  });
}

function setUpKey() {
  const input = $("api-key");
  input.value = sessionStorage.getItem(KEY_STORAGE) || "";
  const apply = () => {
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    loadLists();
  };
  $("key-apply").addEventListener("click", apply);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") apply();
  });
}

setUpKey();
setUpDropZone();
$("generate-form").addEventListener("submit", generate);
$("upload-form").addEventListener("submit", diagnoseFile);
loadLists();
