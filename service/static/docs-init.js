"use strict";
// Swagger UI over this service's /openapi.json: "Try it out" on by default (file uploads
// included), the API key kept across reloads once entered in "Authorize" (shown when the
// service runs with API_KEY), requests sent to the page's own origin.
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", window.location.href).href,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
  tryItOutEnabled: true,
  persistAuthorization: true,
  displayRequestDuration: true,
  validatorUrl: null,  // the public validator badge would call the internet
});
