// A stand-in for an analytics tag. The page includes it as
// <script type="text/plain" data-consent="analytics" src="analytics.js">, so
// it runs only once the visitor allowed analytics. It does what real
// trackers do: sets a first-party cookie and records a page view.
(function () {
  if (window.demoAnalytics) return;
  var id = Math.random().toString(36).slice(2, 10);
  document.cookie = '_demo_analytics=' + id + '; path=/; max-age=31536000; SameSite=Lax';
  window.demoAnalytics = { visitor: id, startedAt: new Date().toISOString(), pageViews: [location.pathname] };

  function show() {
    var el = document.getElementById('analytics-status');
    if (!el) return;
    el.textContent = 'Analytics is running (visitor ' + id + ')';
    el.classList.add('is-on');
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', show);
  else show();
})();
