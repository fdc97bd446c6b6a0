"""Plays the person for addon.py: opens the add-on from a sandbox chat, approves consent, and
checks that the sandbox received the add-on's message. Exits non-zero on any failure."""
import json, sys, urllib.error, urllib.parse as up, urllib.request as ur

SANDBOX = sys.argv[1].rstrip("/")  # e.g. http://127.0.0.1:8090/sandbox
CONVERSATION = "c0ffee00-0000-4000-8000-000001000001"  # seeded: post 1, its first buyer

class NoRedirect(ur.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None

opener = ur.build_opener(NoRedirect)

def go(url, form=None):
    """The answer's Location for a redirect, else its body."""
    data = up.urlencode(form).encode() if form is not None else None
    try:
        return opener.open(ur.Request(url, data)).read().decode()
    except urllib.error.HTTPError as e:
        if e.code in (302, 303, 307):
            return e.headers["Location"]
        sys.exit(f"{url} answered {e.code}: {e.read().decode()[:300]}")

entry = go(f"{SANDBOX}/chats/{CONVERSATION}/open-addon", {"as": "buyer"})
consent = go(entry)  # the add-on's /start sends the person to Divar's consent page
assert "/oauth2/auth?" in consent, consent
query = dict(up.parse_qsl(up.urlparse(consent).query))
callback = go(f"{SANDBOX}/oauth2/auth", {**query, "user_id": "u-sara", "decision": "approve"})
assert "code=" in callback, callback
print("add-on says:", go(callback))
seen = json.load(ur.urlopen(f"{SANDBOX}/_inspect/messages?conversation_id={CONVERSATION}&sender_type=BOT"))
message = seen["messages"][0] if seen["messages"] else sys.exit("the sandbox got no message")
assert message["text"] == "سلام از پایتون", message
assert message["receiver_buttons"]["rows"][0]["buttons"][0]["caption"] == "مسیر", message
print("ok: the sandbox received the message with its button")
