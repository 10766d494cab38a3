// A real OpenID Connect provider for the sign-in tests: oauth2-mock-server (npm) on loopback,
// signing ID tokens with a fresh RSA key. Its first stdout line is {"issuer": URL}.
//
// Environment: OIDC_MODULES (the node_modules it was installed into), OIDC_EMAIL (the
// signed-in person), OIDC_MODE: "ok", or one fault to inject: "tampered" (a payload byte
// changed after signing), "wrong-nonce", "wrong-audience", "unverified-email", or
// "no-email-verified" (no email_verified claim at all, as Entra ID signs).
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.OIDC_MODULES;
const entry = join(modules, "oauth2-mock-server", "dist", "index.mjs");
const { OAuth2Server, Events } = await import(pathToFileURL(entry).href);

const mode = process.env.OIDC_MODE || "ok";
const email = process.env.OIDC_EMAIL || "someone@example.com";

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

server.service.on(Events.BeforeTokenSigning, (token) => {
  Object.assign(token.payload, {
    sub: `sub-${email}`,
    email,
    email_verified: mode !== "unverified-email",
    given_name: "Olivia",
    family_name: "Connect",
  });
  if (mode === "no-email-verified") delete token.payload.email_verified;
  if (mode === "wrong-nonce") token.payload.nonce = "a-nonce-from-another-sign-in";
  if (mode === "wrong-audience") token.payload.aud = "some-other-client";
});

server.service.on(Events.BeforeResponse, (response) => {
  if (mode !== "tampered" || !response.body.id_token) return;
  const [header, payload, signature] = response.body.id_token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  claims.email = "ceo@example.com";
  const forged = Buffer.from(JSON.stringify(claims)).toString("base64url");
  response.body.id_token = [header, forged, signature].join(".");
});

await server.start(0, "127.0.0.1");
const { port } = server.address();
server.issuer.url = `http://127.0.0.1:${port}`;
console.log(JSON.stringify({ issuer: server.issuer.url }));

const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
