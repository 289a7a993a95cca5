// The demo page's own script: shows what the SDK knows, live, and binds the
// newsletter checkbox to the marketing.email purpose. It only uses the SDK's
// public API (window.consentd.consent) and dataLayer, like a site would.
(function () {
  'use strict';

  var sdk = window.consentd;
  var $ = function (id) { return document.getElementById(id); };
  if (!sdk || !sdk.consent) {
    $('state-subject').textContent = 'The SDK did not load (is /sdk/consentd.iife.js built?)';
    return;
  }
  var consent = sdk.consent;

  function text(tag, value, className) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (className) el.className = className;
    return el;
  }

  // --- live consent.get() -------------------------------------------------
  function renderState() {
    var s = consent.get();
    $('state-subject').textContent = s.subjectId || 'not minted yet';
    $('state-revision').textContent = String(s.revision);
    $('state-gpc').textContent = s.gpc ? (s.gpcHonoured ? 'sent, honoured' : 'sent') : 'not sent';
    $('state-pending').textContent = s.pending ? 'yes: waiting for the service' : 'no';

    var rows = $('state-purposes');
    rows.textContent = '';
    var policy = consent.policy();
    var ids = policy ? policy.purposes.map(function (p) { return p.id; }) : Object.keys(s.purposes);
    ids.forEach(function (id) {
      var p = s.purposes[id];
      var tr = document.createElement('tr');
      tr.appendChild(text('td', id));
      var allowed = !!(p && p.allowed);
      tr.appendChild(text('td', allowed ? 'yes' : 'no', allowed ? 'pill pill--on' : 'pill pill--off'));
      tr.appendChild(text('td', p ? p.reason : '–'));
      rows.appendChild(tr);
    });

    document.body.classList.toggle('ads-on', consent.has('ads'));
    // The box shows a real subscription: the person's own choice, never the
    // region's default (in opt-out regions marketing email is allowed until
    // the person objects, which is not the same as having subscribed).
    var box = $('newsletter');
    if (document.activeElement !== box) box.checked = consent.choice('marketing.email') === true;
  }

  // --- newsletter checkbox <-> marketing.email -------------------------------
  $('newsletter').addEventListener('change', function (e) {
    var on = e.target.checked;
    var note = $('newsletter-note');
    note.textContent = 'Saving…';
    consent.set({ 'marketing.email': on }, 'preference_center').then(function (s) {
      note.textContent = on
        ? 'Thanks! Consent to email recorded' + (s.pending ? ' (will be sent when the service is back).' : ' at revision ' + s.revision + '.')
        : 'Unsubscribed: consent to email withdrawn.';
    }, function (err) {
      note.textContent = 'Could not save: ' + err.message;
    });
  });

  // --- Google Consent Mode calls on dataLayer --------------------------------
  var log = $('gcm-log');
  function describe(entry) {
    var args = Array.prototype.slice.call(entry || []);
    if (args[0] !== 'consent') return null;
    var values = args[2] || {};
    var li = document.createElement('li');
    li.appendChild(text('strong', 'consent ' + args[1]));
    var list = document.createElement('span');
    list.className = 'gcm-log__values';
    Object.keys(values).forEach(function (k) {
      var v = values[k];
      list.appendChild(text('span', k + ': ' + v, 'gcm-log__value' + (v === 'granted' ? ' is-granted' : v === 'denied' ? ' is-denied' : '')));
    });
    li.appendChild(list);
    li.appendChild(text('time', new Date().toLocaleTimeString()));
    return li;
  }
  function logEntry(entry) {
    var li = describe(entry);
    if (li) log.insertBefore(li, log.firstChild);
  }
  var dl = (window.dataLayer = window.dataLayer || []);
  dl.forEach(logEntry);
  var push = dl.push;
  dl.push = function () {
    for (var i = 0; i < arguments.length; i++) logEntry(arguments[i]);
    return push.apply(dl, arguments);
  };

  consent.on('change', renderState);
  renderState();
  window.addEventListener('online', renderState);
  window.addEventListener('offline', renderState);
})();
