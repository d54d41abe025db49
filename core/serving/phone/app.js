// The phone app (docs/phone.md): asks the server first; offline, or when the server
// has not answered within SERVER_WAIT_MS, answers on the device with LiteRT.js and keeps
// the answer in IndexedDB until POST /v1/predictions:sync acknowledges it.
import {loadLiteRt, loadAndCompile, Tensor} from './vendor/litertjs-core/index.js';
import {modelInput} from './pillow.js';

const params = new URLSearchParams(location.search);
const LANG = params.get('lang') === 'hi' ? 'hi' : 'en';
const MODEL = params.get('model');  // null: the server's default model
const SERVER_WAIT_MS = Number(params.get('wait') ?? 1500);
const SYNC_BATCH = 20;
const TEXT = {
  en: {
    title: 'Vision classifier', take_photo: 'Take a photo or choose one', version: 'version',
    answered_on: 'answered on the', pending: 'Waiting to sync:', sync_now: 'Sync now',
    model: 'Model on this phone:', device: 'device', server: 'server', online: 'online',
    offline: 'offline', enrolled: 'This phone is enrolled: it syncs what it answers offline.',
    not_enrolled: 'Not enrolled: answers made offline stay on this phone. Open the ' +
      'enrolment link an operator gives you.', synced: 'synced {n}',
    refused: 'the server refused this phone\'s key ({status}); nothing was synced. Ask an ' +
      'operator for a new enrolment link.', rejected: '{n} could not be synced',
    downloading: 'downloading…', no_model: 'No model on this phone yet: connect once ' +
      'so it can download one.', working: 'working…', language: 'हिन्दी',
  },
  hi: {
    title: 'दृष्टि वर्गीकरणकर्ता', take_photo: 'फ़ोटो लें या चुनें', version: 'संस्करण',
    answered_on: 'उत्तर दिया गया:', pending: 'सिंक की प्रतीक्षा में:', sync_now: 'अभी सिंक करें',
    model: 'इस फ़ोन पर मॉडल:', device: 'डिवाइस', server: 'सर्वर', online: 'ऑनलाइन',
    offline: 'ऑफ़लाइन', enrolled: 'यह फ़ोन नामांकित है: ऑफ़लाइन उत्तर सिंक होते हैं।',
    not_enrolled: 'नामांकित नहीं: ऑफ़लाइन उत्तर इसी फ़ोन पर रहते हैं। ऑपरेटर का दिया ' +
      'नामांकन लिंक खोलें।', synced: '{n} सिंक हुए',
    refused: 'सर्वर ने इस फ़ोन की कुंजी अस्वीकार की ({status}); कुछ भी सिंक नहीं हुआ। ऑपरेटर ' +
      'से नया नामांकन लिंक माँगें।', rejected: '{n} सिंक नहीं हो सके',
    downloading: 'डाउनलोड हो रहा है…', no_model: 'इस फ़ोन पर अभी कोई मॉडल नहीं: एक बार ' +
      'कनेक्ट करें ताकि यह डाउनलोड हो सके।', working: 'काम चल रहा है…', language: 'English',
  },
};
const t = (key, values = {}) =>
  TEXT[LANG][key].replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
const $ = id => document.getElementById(id);

// --- storage: IndexedDB (queue of answers; settings: key and model metadata) ---------
const dbReady = new Promise((resolve, reject) => {
  const open = indexedDB.open('vision-phone', 1);
  open.onupgradeneeded = () => {
    open.result.createObjectStore('queue', {keyPath: 'id'});
    open.result.createObjectStore('settings');
  };
  open.onsuccess = () => resolve(open.result);
  open.onerror = () => reject(open.error);
});

async function store(name, mode, work) {
  const db = await dbReady;
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(name, mode);
    const request = work(transaction.objectStore(name));
    transaction.oncomplete = () => resolve(request?.result);
    transaction.onerror = () => reject(transaction.error);
  });
}
const setting = key => store('settings', 'readonly', s => s.get(key));
const saveSetting = (key, value) => store('settings', 'readwrite', s => s.put(value, key));
const queued = () => store('queue', 'readonly', s => s.getAll());

// --- enrolment: /app/#key=... (the fragment never reaches a server) -----------------
async function enrol() {
  const found = location.hash.match(/key=([^&]+)/);
  if (found) {
    await saveSetting('key', decodeURIComponent(found[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('enrolment').textContent = (await setting('key')) ? t('enrolled') : t('not_enrolled');
}

async function authorized(headers = {}) {
  const key = await setting('key');
  return key ? {...headers, Authorization: `Bearer ${key}`} : headers;
}

// --- the device model ------------------------------------------------------------------
const MODEL_KEY = `model:${MODEL ?? ''}`;
const runtimeReady = loadLiteRt(new URL('./vendor/litertjs-core/', location.href).href)
  .then(keepRuntime);

// The loader picks one of two WebAssembly builds (with or without relaxed SIMD): the one
// this browser loaded is kept for offline starts (the first load may come before the
// service worker controls the page, and the other build is never needed here).
async function keepRuntime(runtime) {
  const used = performance.getEntriesByType('resource').map(entry => entry.name)
    .filter(name => name.includes('/vendor/litertjs-core/litert_wasm'));
  const cache = await caches.open('vision-runtime-v1');
  await Promise.all(used.map(async url => (await cache.match(url)) || cache.add(url)));
  return runtime;
}
let device = null;  // {meta, compiled}

async function modelFile(meta) {
  const cache = await caches.open('vision-models');
  const cached = await cache.match(meta.file.url);
  if (cached) return new Uint8Array(await cached.arrayBuffer());
  const response = await fetch(meta.file.url, {headers: await authorized()});
  if (!response.ok) throw new Error(`model file: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)),
                            b => b.toString(16).padStart(2, '0')).join('');
  if (digest !== meta.file.sha256) throw new Error('model file: checksum differs');
  await cache.put(meta.file.url, new Response(bytes));
  return bytes;
}

// Online: the champion's metadata; a new version is downloaded before it is used, so
// an answer always comes from a complete model and names its version.
async function checkModel() {
  const url = MODEL ? `/v1/models/${encodeURIComponent(MODEL)}/device` : '/v1/device';
  try {
    const response = await fetch(url, {headers: await authorized(), cache: 'no-store'});
    if (!response.ok) return;
    const meta = await response.json();
    const known = await setting(MODEL_KEY);
    if (!known || known.file.sha256 !== meta.file.sha256) {
      $('device-model').textContent = t('downloading');
      await modelFile(meta);
      await saveSetting(MODEL_KEY, meta);
      if (known && known.file.url !== meta.file.url) {  // the old version's file
        await (await caches.open('vision-models')).delete(known.file.url);
      }
    }
  } catch (error) {
    console.warn('model check failed', error);  // offline: keep the model we have
  } finally {
    await loadDeviceModel().catch(error => console.warn(error));
  }
}

async function loadDeviceModel() {
  const meta = await setting(MODEL_KEY);
  if (!meta) {
    $('device-model').textContent = t('no_model');
    return null;
  }
  if (!device || device.meta.file.sha256 !== meta.file.sha256) {
    await runtimeReady;
    const compiled = await loadAndCompile(await modelFile(meta), {accelerator: 'wasm'});
    device = {meta, compiled, outputs: compiled.getOutputDetails().map(d => d.name)};
  }
  $('device-model').textContent =
    `${meta.model} v${meta.version} (${meta.file.kind}, ${Math.round(meta.file.bytes / 1024)} KB)`;
  return device;
}

// The device file takes float32 [0, 1] and gives float32 (an int8 model converts inside).
async function runDevice(input) {
  const {meta, compiled, outputs} = device;
  const spec = meta.input;
  const tensor = new Tensor(input, [1, spec.height, spec.width, spec.channels]);
  const results = await compiled.run(tensor);
  const probabilities = Array.from(results[outputs.indexOf('probabilities')].toTypedArray());
  tensor.delete();
  results.forEach(r => r.delete());
  return probabilities;
}

// --- answers ------------------------------------------------------------------------------
async function askServer(file) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), SERVER_WAIT_MS);
  const form = new FormData();
  form.append('file', file);
  const url = '/v1/predict' + (MODEL ? `?model=${encodeURIComponent(MODEL)}` : '');
  try {
    const response = await fetch(url, {method: 'POST', body: form, signal: controller.signal,
                                       headers: await authorized()});
    const body = await response.json();
    if (response.status === 400 || response.status === 413) throw new BadImage(body.error);
    if (!response.ok) return null;
    return {label: body.label, version: body.version, where: 'server',
            probabilities: body.probabilities, latency: body.latency_ms};
  } catch (error) {
    if (error instanceof BadImage) throw error;
    return null;  // offline, too slow, or refused: the device answers
  } finally {
    clearTimeout(timer);
  }
}

class BadImage extends Error {}

async function answerOnDevice(bitmap, started, size) {
  if (!(await loadDeviceModel())) throw new Error(t('no_model'));
  const {meta} = device;
  const {pixels, input} = modelInput(bitmap, meta.input);
  const probabilities = await runDevice(input);
  const latency = performance.now() - started;
  const best = probabilities.indexOf(Math.max(...probabilities));
  const row = {id: newId(), at: new Date().toISOString(), model: meta.model,
               version: meta.version, probabilities, latency_ms: latency, size,
               image: {b64: await png(pixels, meta.input)}};
  await store('queue', 'readwrite', s => s.put(row));
  await showPending();
  return {label: meta.classes[best], version: meta.version, where: 'device', latency,
          probabilities: Object.fromEntries(meta.classes.map((c, i) => [c, probabilities[i]]))};
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
                    b => b.toString(16).padStart(2, '0')).join('');
}

// The image as the model saw it, as PNG (what the server logs and retraining learns from).
async function png(pixels, spec) {
  const canvas = new OffscreenCanvas(spec.width, spec.height);
  const context = canvas.getContext('2d');
  const image = context.createImageData(spec.width, spec.height);
  for (let i = 0; i < spec.width * spec.height; i++) {
    for (let c = 0; c < 3; c++) image.data[i * 4 + c] = pixels[i * spec.channels + (spec.channels === 1 ? 0 : c)];
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  const bytes = new Uint8Array(await (await canvas.convertToBlob({type: 'image/png'})).arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function decode(file) {
  return createImageBitmap(file, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
}

async function onPhoto(file) {
  const started = performance.now();
  $('error').textContent = '';
  $('answer-label').textContent = t('working');
  $('answer').hidden = false;
  $('photo').src = URL.createObjectURL(file);
  $('photo').style.display = 'block';
  try {
    const bitmap = await decode(file);
    let answer = navigator.onLine ? await askServer(file) : null;
    if (answer === null) answer = await answerOnDevice(bitmap, started, [bitmap.width, bitmap.height]);
    else if (!device || device.meta.version !== answer.version) checkModel();  // a promotion
    show(answer, performance.now() - started);
  } catch (error) {
    $('answer').hidden = true;
    $('error').textContent = error.message;
  }
}

function show(answer, ms) {
  $('answer-label').textContent = answer.label;
  $('answer-version').textContent = String(answer.version);
  $('answer-where').textContent = answer.where;
  $('answer-where').className = `where-${answer.where}`;
  $('answer-where').title = t(answer.where);
  $('answer-ms').textContent = ms.toFixed(0);
  const top = Object.entries(answer.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 3);
  $('top-classes').replaceChildren(...top.map(([name, p]) => {
    const row = document.createElement('div');
    row.className = 'bar';
    const fill = Object.assign(document.createElement('span'), {className: 'fill'});
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    row.append(Object.assign(document.createElement('span'), {textContent: name}),
               Object.assign(document.createElement('span'), {}), `${(100 * p).toFixed(1)} %`);
    row.children[1].append(fill);
    return row;
  }));
}

// --- sync: the queue empties only for rows the server acknowledged -------------------------
let syncing = null;

function sync() {
  syncing ??= syncQueue().finally(() => { syncing = null; });
  return syncing;
}

async function syncQueue() {
  const waiting = (await queued()).filter(row => !row.rejected);
  if (!waiting.length || !(await setting('key'))) return;
  let done = 0, rejected = 0;
  for (let i = 0; i < waiting.length; i += SYNC_BATCH) {
    const batch = waiting.slice(i, i + SYNC_BATCH);
    let response;
    try {
      response = await fetch('/v1/predictions:sync', {
        method: 'POST', headers: await authorized({'Content-Type': 'application/json'}),
        body: JSON.stringify({predictions: batch.map(({rejected, ...row}) => row)})});
    } catch (error) {
      return;  // offline again: the rows stay
    }
    if (response.status === 401 || response.status === 403) {
      $('sync-status').textContent = t('refused', {status: response.status});
      return;
    }
    if (!response.ok) return;
    const reply = await response.json();
    await store('queue', 'readwrite', s => {
      reply.acknowledged.forEach(id => s.delete(id));
      for (const {id, error} of reply.rejected) {
        const row = batch.find(r => r.id === id);
        if (row) s.put({...row, rejected: error});
      }
    });
    done += reply.acknowledged.length;
    rejected += reply.rejected.length;
  }
  $('sync-status').textContent = t('synced', {n: done}) + (rejected ? `; ${t('rejected', {n: rejected})}` : '');
  await showPending();
}

async function showPending() {
  $('pending-count').textContent = String((await queued()).filter(row => !row.rejected).length);
}

function showNetwork() {
  $('network').textContent = navigator.onLine ? t('online') : t('offline');
}

// --- start ----------------------------------------------------------------------------------
function translate() {
  document.documentElement.lang = LANG;
  document.querySelectorAll('[data-text]').forEach(e => { e.textContent = t(e.dataset.text); });
  const other = new URLSearchParams(params);
  other.set('lang', LANG === 'hi' ? 'en' : 'hi');
  $('language').href = `?${other}`;
  $('language').textContent = t('language');
}

async function start() {
  translate();
  showNetwork();
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js');
  await enrol();
  await showPending();
  $('photo-input').addEventListener('change', event => {
    const file = event.target.files[0];
    if (file) onPhoto(file);
    event.target.value = '';
  });
  $('sync-now').addEventListener('click', () => sync());
  addEventListener('hashchange', enrol);  // an enrolment link opened in the running app
  addEventListener('online', () => { showNetwork(); checkModel(); sync(); });
  addEventListener('offline', showNetwork);
  setInterval(() => { if (navigator.onLine) sync(); }, 30000);
  if (navigator.onLine) {
    await checkModel();
    sync();
  } else {
    await loadDeviceModel().catch(error => { $('error').textContent = error.message; });
  }
  document.body.dataset.ready = 'true';  // tests and scripts wait for this
}

// For tests and scripts: the device's answer to one image file (base64), no queueing.
window.visionApp = {
  async deviceTopClass(b64) {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const bitmap = await decode(new Blob([bytes]));
    if (!(await loadDeviceModel())) throw new Error(t('no_model'));
    const probabilities = await runDevice(modelInput(bitmap, device.meta.input).input);
    return probabilities.indexOf(Math.max(...probabilities));
  },
  sync, checkModel,
};

start();
