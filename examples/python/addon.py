"""A Kenar add-on in ~40 lines of standard-library Python, run against kenar-sandbox.

A click in a chat reaches /divar/session-init; the person is sent to Divar's consent page
(OAuth 2.0 with PKCE); the callback exchanges the code and sends a message with a button.
Configuration comes from the environment, as `kenar-sandbox` prints it."""
import base64, hashlib, json, os, secrets, urllib.parse as up, urllib.request as ur
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

E = os.environ
SELF, DIVAR = E["ADDON_URL"].rstrip("/"), E["DIVAR_URL"].rstrip("/")  # DIVAR_URL: .../sandbox
pending = {}  # state -> (conversation_id, PKCE verifier)

def call(url, data=None, headers={}, form=False):
    body = up.urlencode(data).encode() if form else json.dumps(data).encode() if data else None
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    return json.load(ur.urlopen(ur.Request(url, body, {"Content-Type": kind, **headers})))

class Addon(BaseHTTPRequestHandler):
    def reply(self, code, body=b"", location=None):
        self.send_response(code)
        if location: self.send_header("Location", location)
        self.end_headers(); self.wfile.write(body)

    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if self.headers.get("Authorization") != E["IDENTIFICATION_KEY"]: return self.reply(401)
        if self.path == "/divar/events": return self.reply(200, b"{}")
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        pending[state] = (data["conversation_id"], verifier)
        self.reply(200, json.dumps({"url": f"{SELF}/start?state={state}"}).encode())

    def do_GET(self):
        url = up.urlparse(self.path); q = dict(up.parse_qsl(url.query))
        conversation, verifier = pending[q["state"]]
        if url.path == "/start":
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
            return self.reply(303, location=f"{DIVAR}/oauth2/auth?" + up.urlencode({
                "response_type": "code", "client_id": E["APP_SLUG"], "redirect_uri": f"{SELF}/oauth/callback",
                "scope": f"CONVERSATION_SEND_MESSAGE.{conversation}", "state": q["state"],
                "code_challenge": challenge.decode(), "code_challenge_method": "S256"}))
        del pending[q["state"]]
        token = call(f"{DIVAR}/oauth2/token", {"grant_type": "authorization_code", "code": q["code"],
            "redirect_uri": f"{SELF}/oauth/callback", "client_id": E["APP_SLUG"],
            "client_secret": E["OAUTH_SECRET"], "code_verifier": verifier}, form=True)["access_token"]
        button = {"caption": "مسیر", "icon": "PLACE", "action": {"open_direct_link": "https://example.com/map"}}
        call(f"{DIVAR}/v2/open-platform/conversations/{conversation}/messages",
             {"type": "TEXT", "message": "سلام از پایتون", "receiver_buttons": {"rows": [{"buttons": [button]}]}},
             {"x-api-key": E["API_KEY"], "Authorization": f"Bearer {token}"})
        self.reply(200, "پیام فرستاده شد.".encode())

ThreadingHTTPServer(("127.0.0.1", int(up.urlparse(SELF).port)), Addon).serve_forever()
