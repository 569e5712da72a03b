// Tests for web/px.js: plain Node (>= 18), node:test + node:assert, no packages.
// The snippet runs in a node:vm context with a fake window/document/navigator/location/history.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import vm from "node:vm";

const SOURCE = readFileSync(new URL("../px.js", import.meta.url), "utf8");
const STUB = "window.pxg = window.pxg || function(){(pxg.q=pxg.q||[]).push(arguments)}";
const PUBLIC_SUFFIXES = new Set(["com", "net", "org", "uk", "co.uk"]);

// A browser-ish page. opts: attrs (data-*), src, url, referrer, cookies ("a=b; c=d"), gpc,
// beacon (a sendBeacon replacement, or null for none), fetch, crypto, currentScript, scripts, before.
function page(opts = {}) {
  const beacons = [];
  const fetches = [];
  const cookieWrites = [];
  const jar = new Map(); // "name|domain" -> {name, value}
  let href = new URL(opts.url ?? "https://shop.example.com/products?color=red");

  for (const pair of (opts.cookies ?? "").split(/;\s*/).filter(Boolean)) {
    const i = pair.indexOf("=");
    jar.set(pair.slice(0, i) + "|", { name: pair.slice(0, i), value: pair.slice(i + 1) });
  }

  const attrs = { "data-pixel": "123", ...(opts.attrs ?? {}) };
  const script = tag(opts.src ?? "https://gw.example.net/px.js", attrs);

  const location = {
    get href() { return href.href; },
    get pathname() { return href.pathname; },
    get search() { return href.search; },
    get hostname() { return href.hostname; },
    get protocol() { return href.protocol; },
    get origin() { return href.origin; },
  };
  const listeners = {};
  const history = {
    pushState(_state, _title, u) { href = new URL(u, href); },
    replaceState(_state, _title, u) { href = new URL(u, href); },
  };
  const document = {
    currentScript: opts.currentScript === undefined ? script : opts.currentScript,
    referrer: opts.referrer ?? "",
    getElementsByTagName: (name) => (name === "script" ? (opts.scripts ?? [script]) : []),
    get cookie() {
      return [...jar.values()].map((c) => `${c.name}=${c.value}`).join("; ");
    },
    set cookie(s) {
      cookieWrites.push(s);
      const [pair, ...rest] = s.split(";");
      const i = pair.indexOf("=");
      const a = Object.fromEntries(rest.map((p) => { const [k, v = ""] = p.split("="); return [k.trim().toLowerCase(), v]; }));
      const host = href.hostname;
      const domain = a.domain ?? "";
      // like a browser: a Domain must be the host or a parent of it, and not a public suffix
      if (domain && ((host !== domain && !host.endsWith("." + domain)) || PUBLIC_SUFFIXES.has(domain))) return;
      jar.set(pair.slice(0, i) + "|" + domain, { name: pair.slice(0, i), value: pair.slice(i + 1), attrs: a });
    },
  };
  const navigator = {
    sendBeacon: opts.beacon === null ? undefined : (opts.beacon ?? ((url, blob) => { beacons.push({ url, blob }); return true; })),
  };
  if (opts.gpc !== undefined) navigator.globalPrivacyControl = opts.gpc;

  const win = {
    document, navigator, location, history,
    crypto: opts.crypto === undefined ? webcrypto : opts.crypto,
    Blob, URL, URLSearchParams, console,
    fetch: opts.fetch ?? ((url, init) => { fetches.push({ url, init }); return Promise.resolve({}); }),
    addEventListener(type, fn) { (listeners[type] ??= []).push(fn); },
  };
  win.window = win;
  const ctx = vm.createContext(win);
  if (opts.before) vm.runInContext(opts.before, ctx);

  const p = {
    win, ctx, beacons, fetches, cookieWrites, jar, history,
    load() { vm.runInContext(SOURCE, ctx, { filename: "px.js" }); return p; },
    run: (code) => vm.runInContext(code, ctx),
    pxg: (...args) => win.pxg(...args),
    go(u) { href = new URL(u, href); },
    fire(type) { for (const fn of listeners[type] ?? []) fn({}); },
    cookie: (name) => [...jar.values()].find((c) => c.name === name),
    // every body sent, parsed, oldest first
    async bodies() {
      const out = [];
      for (const b of beacons) {
        assert.equal(b.blob.type, "text/plain");
        out.push(JSON.parse(await b.blob.text()));
      }
      for (const f of fetches) out.push(JSON.parse(f.init.body));
      return out;
    },
    async events() { return (await p.bodies()).map((b) => b.data[0]); },
  };
  return p;
}

function tag(src, attrs) {
  return { src, getAttribute: (n) => (n in attrs ? attrs[n] : null) };
}

const load = (opts) => page(opts).load();
const EVENT_KEYS = new Set([
  "event_name", "event_time", "event_id", "action_source", "event_source_url", "referrer_url",
  "user_data", "custom_data", "data_processing_options", "data_processing_options_country",
  "data_processing_options_state",
]);

test("PageView on load: the right URL, Meta's server-event format", async () => {
  const before = Math.floor(Date.now() / 1000);
  const p = load({ referrer: "https://news.example.org/a" });
  const after = Math.floor(Date.now() / 1000);
  assert.equal(p.beacons.length, 1);
  assert.equal(p.beacons[0].url, "https://gw.example.net/px/123");
  const [body] = await p.bodies();
  assert.deepEqual(Object.keys(body), ["data"]);
  assert.equal(body.data.length, 1);
  const ev = body.data[0];
  for (const k of Object.keys(ev)) assert.ok(EVENT_KEYS.has(k), `unexpected key ${k}`);
  assert.equal(ev.event_name, "PageView");
  assert.ok(Number.isInteger(ev.event_time) && ev.event_time >= before && ev.event_time <= after);
  assert.match(ev.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(ev.action_source, "website");
  assert.equal(ev.event_source_url, "https://shop.example.com/products?color=red");
  assert.equal(ev.referrer_url, "https://news.example.org/a");
  assert.deepEqual(ev.user_data, {});
  assert.ok(!("custom_data" in ev));
  assert.ok(!("data_processing_options" in ev));
});

test("no referrer_url when document.referrer is empty", async () => {
  const [ev] = await load().events();
  assert.ok(!("referrer_url" in ev));
});

test("data-endpoint overrides the script's origin (trailing slash trimmed)", () => {
  const p = load({ attrs: { "data-endpoint": "https://collect.example.org/gw/" } });
  assert.equal(p.beacons[0].url, "https://collect.example.org/gw/px/123");
});

test("without currentScript: the last px.js script with data-pixel", () => {
  const scripts = [
    tag("https://a.example.net/px.js", { "data-pixel": "111" }),
    tag("https://b.example.net/px.js?v=2", { "data-pixel": "222" }),
    tag("https://c.example.net/px.js", {}),
    tag("https://d.example.net/other.js", { "data-pixel": "444" }),
  ];
  const p = load({ currentScript: null, scripts });
  assert.deepEqual(p.beacons.map((b) => b.url), ["https://b.example.net/px/222"]);
});

test("no script found: nothing sent, pxg still callable", () => {
  const p = load({ currentScript: null, scripts: [] });
  assert.equal(p.beacons.length, 0);
  assert.doesNotThrow(() => p.run("pxg('track', 'Lead')"));
  assert.equal(p.beacons.length + p.fetches.length, 0);
});

test("track returns the given eventID and sends custom_data", async () => {
  const p = load();
  const id = p.run("pxg('track', 'Purchase', {value: 42.5, currency: 'EUR'}, {eventID: 'order-42'})");
  assert.equal(id, "order-42");
  const ev = (await p.events())[1];
  assert.equal(ev.event_name, "Purchase");
  assert.equal(ev.event_id, "order-42");
  assert.deepEqual(ev.custom_data, { value: 42.5, currency: "EUR" });
  assert.equal(p.beacons[1].url, "https://gw.example.net/px/123");
});

test("generated ids are returned, sent and unique", async () => {
  const p = load();
  const ids = [];
  for (let i = 0; i < 200; i++) ids.push(p.pxg("track", "ViewContent"));
  assert.equal(new Set(ids).size, 200);
  const sent = (await p.events()).slice(1).map((e) => e.event_id);
  assert.deepEqual(sent, ids);
});

test("without crypto.randomUUID: 32 hex chars (getRandomValues, or no crypto at all)", () => {
  for (const crypto of [{ getRandomValues: (a) => webcrypto.getRandomValues(a) }, null]) {
    const p = load({ crypto });
    const ids = new Set();
    for (let i = 0; i < 50; i++) {
      const id = p.pxg("track", "Lead");
      assert.match(id, /^[0-9a-f]{32}$/);
      ids.add(id);
    }
    assert.equal(ids.size, 50);
  }
});

test("queued calls made before the script loaded are replayed", async () => {
  const p = page({ before: STUB });
  p.run("pxg('track', 'Lead', {value: 1}, {eventID: 'q1'}); pxg('consent', 'revoke'); pxg('track', 'Search')");
  assert.equal(p.beacons.length, 0);
  p.load();
  const evs = await p.events();
  assert.deepEqual(evs.map((e) => e.event_name), ["PageView", "Lead", "Search"]);
  assert.equal(evs[1].event_id, "q1");
  assert.deepEqual(evs[1].custom_data, { value: 1 });
  assert.equal(p.win.pxg.q, undefined); // the real pxg replaced the stub
});

test("loading twice sends one PageView", () => {
  const p = load();
  p.load();
  assert.equal(p.beacons.length, 1);
});

test("unknown commands and junk calls are ignored, never thrown", () => {
  const p = load();
  for (const code of ["pxg()", "pxg(null)", "pxg('init', '1')", "pxg('track')", "pxg('track', 42)", "pxg({})", "pxg('track', '')"]) {
    assert.equal(p.run(code), undefined, code);
  }
  assert.equal(p.beacons.length, 1);
});

test("fbp and fbc are read from Meta's cookies", async () => {
  const p = load({ cookies: "a=1; _fbp=fb.1.1596403881668.1116446470; _fbc=fb.1.1554763741205.AbCdEf" });
  const [ev] = await p.events();
  assert.deepEqual(ev.user_data, { fbp: "fb.1.1596403881668.1116446470", fbc: "fb.1.1554763741205.AbCdEf" });
});

test("cookies set later (e.g. by Meta's pixel) are picked up on the next event", async () => {
  const p = load();
  p.jar.set("_fbp|", { name: "_fbp", value: "fb.1.1.2" });
  p.pxg("track", "Lead");
  assert.deepEqual((await p.events())[1].user_data, { fbp: "fb.1.1.2" });
});

test("fbc derived from fbclid in Meta's format fb.1.<ms>.<fbclid>, case kept", async () => {
  const before = Date.now();
  const p = load({ url: "https://shop.example.com/?utm_source=fb&fbclid=IwAR2F4-dbP0l7Mn1_Iaw" });
  const after = Date.now();
  const [ev] = await p.events();
  const m = /^fb\.1\.(\d+)\.IwAR2F4-dbP0l7Mn1_Iaw$/.exec(ev.user_data.fbc);
  assert.ok(m, ev.user_data.fbc);
  assert.ok(Number(m[1]) >= before && Number(m[1]) <= after);
  assert.ok(!("fbp" in ev.user_data)); // not made without the cookie opt-in
});

test("fbclid vs an older _fbc cookie: the same click keeps the cookie, a new one wins", async () => {
  const same = load({ url: "https://shop.example.com/?fbclid=Click1", cookies: "_fbc=fb.1.1554763741205.Click1" });
  assert.equal((await same.events())[0].user_data.fbc, "fb.1.1554763741205.Click1");
  const other = load({ url: "https://shop.example.com/?fbclid=Click2", cookies: "_fbc=fb.1.1554763741205.Click1" });
  assert.match((await other.events())[0].user_data.fbc, /^fb\.1\.\d{13}\.Click2$/);
});

test("no cookie set by default, even with an fbclid", () => {
  const p = load({ url: "https://shop.example.com/?fbclid=Click1" });
  assert.deepEqual(p.cookieWrites, []);
});

test('data-cookie="true": _fbp and _fbc set on the site domain, path=/, 90 days, SameSite=Lax', async () => {
  const before = Date.now();
  const p = load({ url: "https://www.shop.example.com/?fbclid=Click9", attrs: { "data-cookie": "true" } });
  const after = Date.now();
  const fbp = p.cookie("_fbp");
  const fbc = p.cookie("_fbc");
  assert.ok(fbp && fbc);
  const m = /^fb\.1\.(\d+)\.(\d{10})$/.exec(fbp.value);
  assert.ok(m, fbp.value);
  assert.ok(Number(m[1]) >= before && Number(m[1]) <= after);
  assert.match(fbc.value, /^fb\.1\.\d+\.Click9$/);
  for (const c of [fbp, fbc]) {
    assert.equal(c.attrs.domain, "example.com"); // the widest domain accepted ("com" is refused)
    assert.equal(c.attrs.path, "/");
    assert.equal(c.attrs["max-age"], String(90 * 24 * 3600));
    assert.equal(c.attrs.samesite, "lax");
    assert.ok("secure" in c.attrs);
  }
  const [ev] = await p.events();
  assert.deepEqual(ev.user_data, { fbp: fbp.value, fbc: fbc.value });
  // next page: the cookies are reused, not replaced
  const next = load({ url: "https://www.shop.example.com/cart", attrs: { "data-cookie": "true" }, cookies: `_fbp=${fbp.value}; _fbc=${fbc.value}` });
  assert.deepEqual(next.cookieWrites, []);
  assert.deepEqual((await next.events())[0].user_data, { fbp: fbp.value, fbc: fbc.value });
});

test('data-cookie="true" on localhost: a host-only cookie', () => {
  const p = load({ url: "http://localhost:3000/", attrs: { "data-cookie": "true" } });
  assert.equal(p.cookieWrites.length, 1);
  assert.ok(!/domain=/.test(p.cookieWrites[0]) && !/secure/.test(p.cookieWrites[0]));
  assert.ok(p.cookie("_fbp"));
});

test("Global Privacy Control adds Limited Data Use to every event", async () => {
  const p = load({ gpc: true });
  p.pxg("track", "Purchase", { value: 1 });
  for (const ev of await p.events()) {
    assert.deepEqual(ev.data_processing_options, ["LDU"]);
    assert.equal(ev.data_processing_options_country, 0);
    assert.equal(ev.data_processing_options_state, 0);
  }
  for (const gpc of [false, "true", 1]) {
    const [ev] = await load({ gpc }).events();
    assert.ok(!("data_processing_options" in ev), String(gpc));
  }
});

test('data-spa="true": a PageView on pushState/replaceState/popstate, only when the path changes', async () => {
  const p = load({ attrs: { "data-spa": "true" } });
  p.run("history.pushState({}, '', '/checkout')");
  p.run("history.pushState({}, '', '/checkout?step=2')"); // same path
  p.run("history.replaceState({}, '', '/checkout#pay')"); // same path
  p.run("history.replaceState({}, '', '/thanks')");
  p.go("/products");
  p.fire("popstate");
  p.fire("popstate"); // nothing moved
  const evs = await p.events();
  assert.deepEqual(evs.map((e) => e.event_name), ["PageView", "PageView", "PageView", "PageView"]);
  assert.deepEqual(evs.map((e) => new URL(e.event_source_url).pathname), ["/products", "/checkout", "/thanks", "/products"]);
  assert.equal(new Set(evs.map((e) => e.event_id)).size, 4);
});

test("without data-spa: history is untouched and navigation sends nothing", () => {
  const p = page();
  const push = p.history.pushState;
  p.load();
  assert.equal(p.history.pushState, push);
  p.run("history.pushState({}, '', '/checkout')");
  p.go("/x");
  p.fire("popstate");
  assert.equal(p.beacons.length, 1);
});

test("no personal data unless the site passes it; userData passed through unchanged", async () => {
  const p = load({ cookies: "email=jane@example.com; _ga=GA1.2.3; _fbp=fb.1.1.2", referrer: "" });
  p.pxg("track", "Lead", { value: 3 });
  for (const b of await p.bodies()) {
    const json = JSON.stringify(b);
    assert.ok(!json.includes("jane") && !json.includes("GA1"), json);
    assert.deepEqual(b.data[0].user_data, { fbp: "fb.1.1.2" });
  }
  const userData = { em: "Jane@Example.com ", ph: "+33 6 12 34 56 78", external_id: "u-1", fn: ["x"] };
  p.pxg("track", "Purchase", { value: 9 }, { eventID: "o1", userData });
  const ev = (await p.events())[2];
  assert.deepEqual(ev.user_data, { fbp: "fb.1.1.2", ...userData });
});

test("malformed data-pixel: nothing sent", () => {
  for (const pixel of ["12a", "", " 123", "123/../admin", "-1", "1e5", "9".repeat(40), null]) {
    const attrs = pixel === null ? {} : { "data-pixel": pixel };
    const p = page({ attrs: {} });
    p.win.document.currentScript = tag("https://gw.example.net/px.js", attrs);
    p.win.document.getElementsByTagName = () => [];
    p.load();
    assert.doesNotThrow(() => p.pxg("track", "Purchase", { value: 1 }));
    assert.equal(p.beacons.length + p.fetches.length, 0, String(pixel));
  }
});

test("customData that is not an object is dropped, the event still sent", async () => {
  const p = load();
  for (const custom of ["value=1", 42, null, [1, 2], true]) p.pxg("track", "Lead", custom);
  const evs = await p.events();
  assert.equal(evs.length, 6);
  for (const ev of evs) assert.ok(!("custom_data" in ev));
});

test("odd options: bad eventID or userData are replaced or ignored", async () => {
  const p = load();
  const ids = [
    p.pxg("track", "Lead", {}, { eventID: { x: 1 } }),
    p.pxg("track", "Lead", {}, { eventID: "" }),
    p.pxg("track", "Lead", {}, "order-1"),
    p.pxg("track", "Lead", {}, { eventID: 77, userData: "jane@example.com" }),
  ];
  assert.match(ids[0], /^[0-9a-f-]{36}$/);
  assert.match(ids[1], /^[0-9a-f-]{36}$/);
  assert.match(ids[2], /^[0-9a-f-]{36}$/);
  assert.equal(ids[3], "77");
  const evs = await p.events();
  assert.deepEqual(evs.slice(1).map((e) => e.event_id), ids);
  assert.ok(!JSON.stringify(evs).includes("jane"));
});

test("fetch fallback when sendBeacon is missing, refuses or throws", async () => {
  const beacons = [
    null,
    () => false,
    () => { throw new TypeError("Illegal invocation"); },
  ];
  for (const beacon of beacons) {
    const p = load({ beacon });
    assert.doesNotThrow(() => p.pxg("track", "Lead", { value: 2 }));
    assert.equal(p.fetches.length, 2);
    const f = p.fetches[1];
    assert.equal(f.url, "https://gw.example.net/px/123");
    assert.equal(f.init.method, "POST");
    assert.equal(f.init.keepalive, true);
    assert.equal(f.init.mode, "no-cors");
    assert.equal(f.init.credentials, "omit");
    assert.deepEqual({ ...f.init.headers }, { "Content-Type": "text/plain" });
    assert.equal(typeof f.init.body, "string");
    const body = JSON.parse(f.init.body);
    assert.equal(body.data[0].event_name, "Lead");
    assert.deepEqual(body.data[0].custom_data, { value: 2 });
  }
});

test("a failing transport never throws to the page", async () => {
  const fetches = [
    () => { throw new Error("blocked"); },
    () => Promise.reject(new TypeError("Failed to fetch")), // no unhandled rejection either
    undefined,
  ];
  for (const fetch of fetches) {
    const p = page({ beacon: () => { throw new Error("no"); }, fetch });
    if (fetch === undefined) p.win.fetch = undefined;
    assert.doesNotThrow(() => p.load());
    assert.equal(typeof p.pxg("track", "Lead"), "string");
  }
  await new Promise((r) => setTimeout(r, 10));
});

test("hostile values: huge strings are sent, circular data is dropped, nothing throws", async () => {
  const p = load();
  const huge = "x".repeat(1_000_000);
  const id = p.pxg("track", huge, { note: huge, nested: { a: [huge] } }, { eventID: "big" });
  assert.equal(id, "big");
  const ev = (await p.events())[1];
  assert.equal(ev.event_name.length, 1_000_000);
  assert.equal(ev.custom_data.note.length, 1_000_000);

  const circular = { value: 1 };
  circular.self = circular;
  assert.equal(p.pxg("track", "Lead", circular, { eventID: "c1" }), "c1");
  assert.equal(p.pxg("track", "Lead", { n: 10n }, { eventID: "b1" }), "b1"); // BigInt: not JSON
  const getter = { get value() { throw new Error("boom"); } };
  assert.equal(p.pxg("track", "Lead", getter, { eventID: "g1" }), "g1");
  assert.equal(p.beacons.length, 2);

  const q = page({ before: STUB });
  q.run("pxg.q = [null, 5, 'track', {length: 2, 0: 'track', 1: 'Lead'}]");
  assert.doesNotThrow(() => q.load());
  assert.deepEqual((await q.events()).map((e) => e.event_name), ["PageView", "Lead"]);
});

test("every body is valid JSON in Meta's format, one event per request", async () => {
  const p = load({ url: "https://shop.example.com/p?fbclid=Z", gpc: true, referrer: "https://r.example/" });
  p.pxg("track", "AddToCart", { content_ids: ["sku-1"], value: 12, currency: "EUR" }, { userData: { em: "a@b.c" } });
  const raw = await Promise.all(p.beacons.map((b) => b.blob.text()));
  for (const text of raw) {
    const body = JSON.parse(text);
    assert.deepEqual(Object.keys(body), ["data"]);
    assert.ok(Array.isArray(body.data) && body.data.length === 1);
    const ev = body.data[0];
    for (const k of Object.keys(ev)) assert.ok(EVENT_KEYS.has(k), k);
    for (const k of ["event_name", "event_id", "action_source", "event_source_url"]) assert.equal(typeof ev[k], "string");
    assert.equal(typeof ev.event_time, "number");
    assert.equal(typeof ev.user_data, "object");
  }
});
