// Embedded in a portal: tell the parent window our height (only the origins allowed to
// frame us, from FRAME_ANCESTORS), and the top-level sign-in fallback. No inline script.
(function () {
  "use strict";

  function allowedOrigins() {
    var meta = document.querySelector('meta[name="lms-frame-ancestors"]');
    if (!meta) return [];
    return meta.content.split(/\s+/).filter(function (origin) {
      return /^https?:\/\/[^*\s\/]+$/.test(origin);
    });
  }

  function postHeight() {
    var origins = allowedOrigins();
    if (window.parent === window || origins.length === 0) return;
    var height = Math.ceil(document.documentElement.scrollHeight);
    origins.forEach(function (origin) {
      // Delivered only if the parent really is that origin; dropped otherwise.
      window.parent.postMessage({ type: "lmsweb:height", height: height }, origin);
    });
  }

  function init() {
    postHeight();
    if (window.ResizeObserver) new ResizeObserver(postHeight).observe(document.body);
    document.body.addEventListener("htmx:afterSettle", postHeight);

    // Browsers with the Storage Access API can grant the frame its cookie on a click.
    var access = document.querySelector("[data-storage-access]");
    if (access && window.parent !== window && document.requestStorageAccess) {
      access.hidden = false;
      access.addEventListener("click", function () {
        document.requestStorageAccess().then(function () { window.location.reload(); },
          function () { access.hidden = true; });
      });
    }
    var closer = document.querySelector("[data-close-window]");
    if (closer) closer.addEventListener("click", function () { window.close(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
