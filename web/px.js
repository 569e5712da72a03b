/* Pixel Gateway snippet, see web/README.md */
(function (w, d) {
  "use strict";
  if (w.pxg && w.pxg.loaded) return; // tag included twice

  const nav = w.navigator || {};
  const loc = w.location;
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const now = () => Date.now();
  const attrOf = (s, n) => s.getAttribute("data-" + n);

  // our tag: currentScript, else the last px.js with data-pixel
  const find = () => {
    const c = d.currentScript;
    if (c && attrOf(c, "pixel") !== null) return c;
    const all = d.getElementsByTagName("script");
    for (let i = all.length - 1; i >= 0; i--) {
      const s = all[i];
      if (/\/px\.js$/.test(String(s.src).split(/[?#]/)[0]) && attrOf(s, "pixel") !== null) return s;
    }
  };

  let pixel, url, spa, opt;
  try {
    const s = find();
    const id = String(attrOf(s, "pixel"));
    if (/^\d{1,32}$/.test(id)) pixel = id;
    url = String(attrOf(s, "endpoint") || new URL(s.src, loc.href).origin).replace(/\/+$/, "") + "/px/" + pixel;
    spa = attrOf(s, "spa") === "true";
    opt = attrOf(s, "cookie") === "true"; // may set cookies
  } catch (e) {
    pixel = 0;
  }

  // event id: randomUUID, else 32 hex chars
  const newId = () => {
    const c = w.crypto || {};
    try {
      if (c.randomUUID) return c.randomUUID();
    } catch (e) {}
    let s = "";
    const b = c.getRandomValues ? c.getRandomValues(new Uint8Array(16)) : [];
    for (let i = 0; i < 16; i++) s += ((b[i] === undefined ? Math.random() * 256 : b[i]) | 256).toString(16).slice(1);
    return s;
  };

  // only _fbp and _fbc are read
  const jar = () => String(d.cookie || "").split(/;\s*/);
  const get = (n) => {
    for (const c of jar()) if (c.indexOf(n + "=") === 0) return c.slice(n.length + 1) || undefined;
  };
  // on the widest domain the browser accepts (a.b.com: b.com, a.b.com), else host-only
  const put = (n, v) => {
    const base = n + "=" + v + ";path=/;max-age=7776000;samesite=lax" + (loc.protocol === "https:" ? ";secure" : "");
    const parts = String(loc.hostname).split(".");
    for (let i = parts.length - 2; i >= 0; i--) {
      d.cookie = base + ";domain=" + parts.slice(i).join(".");
      if (jar().indexOf(n + "=" + v) >= 0) return;
    }
    d.cookie = base;
  };

  // fbc: a new fbclid wins over _fbc; fbp: only made when cookies are allowed
  let fbc, fbp;
  try {
    const clid = new URLSearchParams(loc.search).get("fbclid");
    const old = get("_fbc");
    if (clid && (!old || old.split(".").slice(3).join(".") !== clid)) {
      fbc = "fb.1." + now() + "." + clid;
      if (opt) put("_fbc", fbc);
    }
    if (opt && !get("_fbp")) put("_fbp", (fbp = "fb.1." + now() + "." + (1e9 + Math.floor(Math.random() * 9e9))));
  } catch (e) {}

  // text/plain: no CORS preflight
  const post = (body) => {
    try {
      if (nav.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return;
    } catch (e) {}
    try {
      w.fetch(url, {
        method: "POST", body, keepalive: true, mode: "no-cors", credentials: "omit",
        headers: { "Content-Type": "text/plain" },
      }).catch(() => {});
    } catch (e) {}
  };

  // one event in Meta's format; returns its id
  const track = (name, custom, o) => {
    if (!name || typeof name !== "string") return;
    o = isObj(o) ? o : {};
    const g = o.eventID;
    const id = (g && typeof g === "string") || typeof g === "number" ? String(g) : newId();
    try {
      const user = {};
      const p = get("_fbp") || fbp;
      const c = fbc || get("_fbc");
      if (p) user.fbp = p;
      if (c) user.fbc = c;
      if (isObj(o.userData)) Object.assign(user, o.userData); // the server hashes it
      const ev = {
        event_name: name,
        event_time: Math.floor(now() / 1000),
        event_id: id,
        action_source: "website",
        event_source_url: loc.href,
      };
      if (d.referrer) ev.referrer_url = d.referrer;
      ev.user_data = user;
      if (isObj(custom)) ev.custom_data = custom;
      if (nav.globalPrivacyControl === true) {
        ev.data_processing_options = ["LDU"];
        ev.data_processing_options_country = 0;
        ev.data_processing_options_state = 0;
      }
      if (pixel) post(JSON.stringify({ data: [ev] }));
    } catch (e) {}
    return id;
  };

  // pxg('track', name, customData, {eventID, userData}); other commands ignored
  const pxg = (cmd, ...args) => {
    try {
      if (cmd === "track") return track(...args);
    } catch (e) {}
  };
  pxg.loaded = true;
  const queue = w.pxg && w.pxg.q;
  w.pxg = pxg;

  pxg("track", "PageView");
  try {
    for (const a of Array.from(queue || [])) pxg(...Array.from(a || [])); // queued calls

    // SPA: a PageView when the path changes
    if (spa) {
      let last = loc.pathname;
      const moved = () => {
        if (loc.pathname !== last) {
          last = loc.pathname;
          pxg("track", "PageView");
        }
      };
      const h = w.history;
      for (const m of ["pushState", "replaceState"]) {
        const orig = h[m];
        if (typeof orig === "function") {
          h[m] = function () {
            const r = orig.apply(this, arguments);
            moved();
            return r;
          };
        }
      }
      w.addEventListener("popstate", moved);
    }
  } catch (e) {}
})(window, document);
