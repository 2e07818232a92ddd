// kbert's web demo: an app-ready .tflite in @mediapipe/tasks-text's TextClassifier.
// Every file comes from the page's own server (python -m export.serve): the package's bundle
// and WebAssembly under mediapipe/tasks-text/, the model at model.tflite (or ?model=URL).
// ?raw=1 classifies the text as typed (no normalizeForModel).
import {FilesetResolver, TextClassifier} from "./mediapipe/tasks-text/text_bundle.mjs";

const params = new URLSearchParams(location.search);
const TOP = Number(params.get("top")) || 5;   // ?top=N lists N labels
const modelUrl = params.get("model") || "model.tflite";
const $ = (id) => document.getElementById(id);
let classifier = null;
let normalize = (text) => text;

// docs/EDGE.md's normalizeForModel: what kbert's tokenizer does and MediaPipe's does not.
const NORMALIZERS = {
  uncased: (text) => text.normalize("NFD").replace(/[\p{Mn}\p{Cf}]|(?![\t\n\r])\p{Cc}/gu, "")
      .toLowerCase(),
  albert: (text) => text.replace(/``|''/g, '"').normalize("NFKD")
      .replace(/\p{Mn}/gu, "").toLowerCase(),
};

function showError(message) {
  document.body.dataset.state = "error";
  $("error").textContent = message;
  $("error").hidden = false;
  $("classify").disabled = true;
}

async function describeModel() {
  if (params.has("model")) return `Model: ${modelUrl}`;
  const response = await fetch("model.json");
  if (!response.ok) return "Model: model.tflite";
  const info = await response.json();
  if (!params.has("raw")) normalize = NORMALIZERS[info.normalize] || normalize;
  return `Model: ${info.file} (${info.name}; ${info.labels.length} labels: ` +
         `${info.labels.slice(0, 8).join(", ")}${info.labels.length > 8 ? ", …" : ""}; ` +
         `${info.mode}, up to ${info.max_seq_length} tokens; text normalised: ` +
         `${info.normalize}) · ` +
         `${info.package} ${info.package_version}`;
}

function show(text, result) {
  const categories = [...result.classifications[0].categories]
      .sort((a, b) => b.score - a.score).slice(0, TOP);
  const list = document.createElement("ol");
  list.id = "labels";
  for (const c of categories) {
    const item = document.createElement("li");
    item.dataset.label = c.categoryName;
    item.dataset.score = String(c.score);
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = c.categoryName || `#${c.index}`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.setProperty("--score", c.score.toFixed(4));
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = c.score.toFixed(4);
    item.append(name, bar, score);
    list.append(item);
  }
  $("results").replaceChildren(list);
  $("results").dataset.text = text;
  document.body.dataset.state = "classified";
}

function classify(event) {
  event?.preventDefault();
  if (!classifier) return;
  const text = $("text").value;
  try {
    show(text, classifier.classify(normalize(text)));
  } catch (error) {
    showError(`Classification failed: ${error.message || error}`);
  }
}

async function start() {
  try {
    $("model").textContent = await describeModel();
    const wasm = new URL("mediapipe/tasks-text/wasm", document.baseURI).href;
    const fileset = await FilesetResolver.forTextTasks(wasm);
    const model = await fetch(modelUrl);
    if (!model.ok) throw new Error(`${modelUrl}: HTTP ${model.status} ${model.statusText}`);
    const bytes = new Uint8Array(await model.arrayBuffer());
    classifier = await TextClassifier.createFromOptions(fileset, {
      baseOptions: {modelAssetBuffer: bytes}, maxResults: -1});
  } catch (error) {
    showError(`The model failed to load: ${error.message || error}`);
    return;
  }
  $("classify").disabled = false;
  document.body.dataset.state = "ready";
  $("form").addEventListener("submit", classify);
}

start();
