// Swagger UI on the gateway's own OpenAPI document (a file, since the page's
// Content-Security-Policy allows no inline script).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: false,
  validatorUrl: null,
});
