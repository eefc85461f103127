// Oracle: twilio-node's own AccessToken. stdin: [case, ...] as in twilio_token.py (without "now");
// stdout: [{"header": {...}, "payload": {...}}] decoded from the tokens twilio-node mints.
const twilio = require("twilio");
const { AccessToken } = twilio.jwt;
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const decode = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
const out = input.map((c) => {
  const token = new AccessToken(c.account_sid, c.api_key_sid, c.secret, { identity: c.identity, ttl: c.ttl });
  token.addGrant(new AccessToken.ChatGrant({ serviceSid: c.service_sid, pushCredentialSid: c.push_credential_sid }));
  const [h, p] = token.toJwt().split(".");
  return { header: decode(h), payload: decode(p) };
});
process.stdout.write(JSON.stringify(out));
