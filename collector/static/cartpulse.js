/*! cartpulse.js: a small, dependency-free, Segment-style browser tracker for the cartpulse collector.
 *
 * Usage:
 *   <script src="https://collector.example/cartpulse.js" data-write-key="demo-write-key"></script>
 *   <script>
 *     cartpulse.page();
 *     cartpulse.track('Product Added', {product_id: 'p1', price: 10, quantity: 1});
 *     cartpulse.identify('user-42', {email: 'ann@example.com'});
 *   </script>
 *
 * What it does:
 * - keeps an anonymous id (localStorage, else memory), and the user id once identify() was called;
 * - queues events and posts them to /v1/batch when flushAt (20) are queued or flushInterval (2 s) passed;
 * - keeps the queue in localStorage until the collector answers, so a page change loses nothing, and retries
 *   5xx/429/network failures with exponential backoff and jitter (honouring Retry-After);
 * - when the page is hidden or unloaded, sends what is queued with navigator.sendBeacon. A beacon's fate is
 *   unknown (the browser says true even when the host is down), so beaconed events are kept aside and sent
 *   once more by the next page of the site, if it loads within 12 hours.
 * Every event has a messageId, so the collector drops the copies a retry or a beacon resend delivers twice
 * (its dedup window, 24 hours by default, must stay longer than those 12 hours).
 * The write key travels in the body (a beacon cannot set headers), with Content-Type text/plain so that a
 * cross-origin post needs no CORS preflight.
 */
(function (window, document) {
  'use strict';

  var VERSION = '0.1.0';
  var PREFIX = 'cartpulse:';
  var MAX_QUEUE = 1000; // events kept while the collector is unreachable; the oldest go first
  var MAX_BATCH_BYTES = 450 * 1024; // under the collector's 500 KB per batch
  var MAX_BEACON_BYTES = 60 * 1024; // browsers cap a beacon at 64 KB
  var RESEND_BEACONED_MS = 12 * 3600 * 1000; // well inside the collector's 24 h dedup window

  var memory = {};
  function load(key) {
    try {
      var raw = window.localStorage.getItem(PREFIX + key);
      return raw === null ? null : JSON.parse(raw);
    } catch (e) {
      return Object.prototype.hasOwnProperty.call(memory, key) ? memory[key] : null;
    }
  }
  function save(key, value) {
    memory[key] = value;
    try {
      window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
    } catch (e) {
      /* private mode or full: memory only */
    }
  }
  function remove(key) {
    delete memory[key];
    try {
      window.localStorage.removeItem(PREFIX + key);
    } catch (e) {
      /* ignore */
    }
  }

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  function Tracker() {
    this.writeKey = null;
    this.options = {host: '', flushAt: 20, flushInterval: 2000, retryBase: 1000, retryMax: 30000};
    this.queue = [];
    this.attempts = 0;
    this.timer = null;
    this.inflight = null;
    this.notBefore = 0; // after a failure, no send before this time (ms), whatever else asks for one
    this.stats = {sent: 0, beaconed: 0, failures: 0, lastStatus: null, lastErrors: []};
  }

  Tracker.prototype.load = function (writeKey, options) {
    this.writeKey = writeKey;
    for (var key in options || {}) {
      if (options[key] !== undefined && options[key] !== null) this.options[key] = options[key];
    }
    this.options.host = String(this.options.host || '').replace(/\/+$/, '');
    if (!load('anonymousId')) save('anonymousId', uuid());
    // Events a previous page could not deliver, after those it beaconed (their arrival is not known).
    var now = Date.now();
    var beaconed = (load('beaconed') || []).filter(function (entry) { return now - entry.at < RESEND_BEACONED_MS; });
    this.queue = beaconed.map(function (entry) { return entry.message; }).concat(load('queue') || []);
    remove('beaconed');
    save('queue', this.queue);
    var self = this;
    var hidden = function () { self.beacon(); };
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'hidden') hidden();
    });
    window.addEventListener('pagehide', hidden);
    if (this.queue.length) this.schedule(0);
    return this;
  };

  Tracker.prototype.anonymousId = function () { return load('anonymousId'); };
  Tracker.prototype.userId = function () { return load('userId'); };

  Tracker.prototype.track = function (event, properties) {
    return this.enqueue({type: 'track', event: event, properties: properties || {}});
  };
  Tracker.prototype.page = function (name, properties) {
    var props = {path: location.pathname, url: location.href, title: document.title, referrer: document.referrer};
    for (var key in properties || {}) props[key] = properties[key];
    return this.enqueue({type: 'page', name: name || document.title, properties: props});
  };
  Tracker.prototype.identify = function (userId, traits) {
    if (userId) save('userId', String(userId));
    return this.enqueue({type: 'identify', traits: traits || {}});
  };
  Tracker.prototype.reset = function () {
    remove('userId');
    save('anonymousId', uuid());
  };

  Tracker.prototype.enqueue = function (message) {
    message.messageId = uuid();
    message.timestamp = new Date().toISOString();
    message.anonymousId = this.anonymousId();
    var userId = this.userId();
    if (userId) message.userId = userId;
    message.context = {
      library: {name: 'cartpulse.js', version: VERSION},
      page: {path: location.pathname, url: location.href, title: document.title, referrer: document.referrer},
      userAgent: navigator.userAgent,
      locale: navigator.language
    };
    this.queue.push(message);
    if (this.queue.length > MAX_QUEUE) this.queue.splice(0, this.queue.length - MAX_QUEUE);
    save('queue', this.queue);
    if (this.queue.length >= this.options.flushAt) this.flush();
    else this.schedule(this.options.flushInterval);
    return message.messageId;
  };

  Tracker.prototype.schedule = function (delay) {
    delay = Math.max(delay, this.notBefore - Date.now());
    if (this.timer !== null) return;
    var self = this;
    this.timer = setTimeout(function () { self.timer = null; self.flush(); }, delay);
  };

  /* Send what is queued; resolves when the queue is empty or a send failed (a retry is then scheduled). */
  Tracker.prototype.flush = function () {
    if (this.inflight) return this.inflight;
    if (!this.queue.length) return Promise.resolve(true);
    if (Date.now() < this.notBefore) { this.schedule(0); return Promise.resolve(false); }
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    var self = this;
    var batch = this.take(MAX_BATCH_BYTES);
    this.inflight = this.post(batch).then(function (result) {
      self.inflight = null;
      self.stats.lastStatus = result.status;
      if (result.done) {
        self.attempts = 0;
        self.notBefore = 0;
        self.drop(batch);
        self.stats.sent += batch.length;
        if (result.errors) self.stats.lastErrors = result.errors;
        return self.queue.length ? self.flush() : true;
      }
      self.attempts += 1;
      self.stats.failures += 1;
      var backoff = Math.min(self.options.retryMax, self.options.retryBase * Math.pow(2, self.attempts - 1));
      var delay = Math.max(result.retryAfter || 0, backoff * (0.5 + Math.random() / 2));
      self.notBefore = Date.now() + delay;
      self.schedule(delay);
      return false;
    });
    return this.inflight;
  };

  Tracker.prototype.post = function (batch) {
    var body = this.body(batch);
    return fetch(this.options.host + '/v1/batch', {
      method: 'POST',
      headers: {'Content-Type': 'text/plain'},
      body: body,
      keepalive: body.length < MAX_BEACON_BYTES,
      credentials: 'omit'
    }).then(function (response) {
      var retryAfter = Number(response.headers.get('Retry-After')) * 1000 || 0;
      if (response.ok) return {done: true, status: response.status};
      if (response.status === 429 || response.status >= 500) {
        return {done: false, status: response.status, retryAfter: retryAfter};
      }
      // 4xx: the valid events were accepted and the others will never be; log them and move on.
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (window.console) window.console.warn('cartpulse: events rejected', answer.errors || answer);
        return {done: true, status: response.status, errors: answer.errors || []};
      });
    }, function () {
      return {done: false, status: 0};
    });
  };

  /* On page hide: hand everything queued to the browser, which sends it even as the page goes away. */
  Tracker.prototype.beacon = function () {
    if (!this.queue.length || !navigator.sendBeacon) return;
    while (this.queue.length) {
      var batch = this.take(MAX_BEACON_BYTES);
      var blob = new Blob([this.body(batch)], {type: 'text/plain'});
      if (!navigator.sendBeacon(this.options.host + '/v1/batch', blob)) break; // kept for the next page
      this.drop(batch);
      this.keepBeaconed(batch);
      this.stats.beaconed += batch.length;
    }
  };

  Tracker.prototype.keepBeaconed = function (batch) {
    var kept = load('beaconed') || [];
    var at = Date.now();
    batch.forEach(function (message) { kept.push({at: at, message: message}); });
    if (kept.length > MAX_QUEUE) kept.splice(0, kept.length - MAX_QUEUE);
    save('beaconed', kept);
  };

  Tracker.prototype.take = function (maxBytes) {
    var batch = [];
    var size = 200;
    for (var i = 0; i < this.queue.length; i++) {
      var length = JSON.stringify(this.queue[i]).length + 1;
      if (batch.length && size + length > maxBytes) break;
      batch.push(this.queue[i]);
      size += length;
    }
    return batch;
  };

  Tracker.prototype.drop = function (batch) {
    var ids = {};
    batch.forEach(function (message) { ids[message.messageId] = true; });
    this.queue = this.queue.filter(function (message) { return !ids[message.messageId]; });
    save('queue', this.queue);
  };

  Tracker.prototype.body = function (batch) {
    return JSON.stringify({batch: batch, sentAt: new Date().toISOString(), writeKey: this.writeKey});
  };

  Tracker.prototype.debug = function () {
    return {
      anonymousId: this.anonymousId(),
      userId: this.userId(),
      queued: this.queue.length,
      sent: this.stats.sent,
      beaconed: this.stats.beaconed,
      failures: this.stats.failures,
      lastStatus: this.stats.lastStatus,
      lastErrors: this.stats.lastErrors
    };
  };

  // Calls made before this script loaded (a Segment-style stub: window.cartpulse = [['track', ...], ...]).
  var early = Array.isArray(window.cartpulse) ? window.cartpulse : [];
  var tracker = new Tracker();
  window.cartpulse = tracker;

  var script = document.currentScript;
  if (script && script.getAttribute('data-write-key')) {
    var src = script.getAttribute('src') || '';
    var origin = /^https?:\/\//.test(src) ? src.replace(/^(https?:\/\/[^/]+).*$/, '$1') : '';
    var data = script.dataset;
    tracker.load(script.getAttribute('data-write-key'), {
      host: data.host || origin,
      flushAt: data.flushAt ? Number(data.flushAt) : undefined,
      flushInterval: data.flushInterval ? Number(data.flushInterval) : undefined
    });
  }
  early.forEach(function (call) {
    if (call && typeof tracker[call[0]] === 'function') tracker[call[0]].apply(tracker, call.slice(1));
  });
})(window, document);
