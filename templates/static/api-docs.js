// The API reference page (/api/v1/docs): Swagger UI, from this app's own copy of its assets,
// over the served OpenAPI document. No inline script, so the page's CSP needs no 'unsafe-inline'.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    deepLinking: true,
    // the online validator badge would call an outside host; the page stays offline
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
  });
});
