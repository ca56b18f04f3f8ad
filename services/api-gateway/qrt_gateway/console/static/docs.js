// Swagger UI on the gateway's own OpenAPI document (a file, since the page's
// Content-Security-Policy allows no inline script).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // Kept off: Swagger UI would keep the key in localStorage, past the tab and the browser's
  // restart, where the console keeps it for the tab only.
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null,
});
