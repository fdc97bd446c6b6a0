#!/usr/bin/env python3
"""Memory while people attach files: N buyers (default 10) each connect in the sandbox, then all
send a 5 MB PDF from the composer at once; the server's RSS is sampled every 20 ms.

    cargo build --release && target/release/kenar-chat sandbox &   # the add-on + sandbox
    python3 scripts/upload-rss.py [--base http://127.0.0.1:8080] [--uploads 10] [--size 4999000]

PDFs, not photos: the sandbox keeps a photo's bytes to show it, which would be counted in the same
process; a file it keeps only by name. Needs `requests` (pip install requests)."""

import argparse
import re
import subprocess
import threading
import time
from urllib.parse import parse_qsl, urlparse

import requests

BUYERS = ["u-sara", "u-hamid", "u-neda", "u-omid"]


def connect(base, post, buyer):
    """The buyer of the seeded chat (post, buyer) connected, or None when there is no such chat."""
    conv = f"c0ffee00-0000-4000-8000-{post:06d}{buyer:06d}"
    s = requests.Session()
    r = s.post(f"{base}/sandbox/chats/{conv}/open-addon", data={"as": "buyer"}, allow_redirects=False)
    if r.status_code != 303:
        return None
    s.get(r.headers["location"], allow_redirects=False)
    start = s.get(f"{base}/start").text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', start).group(1)
    r = s.post(f"{base}/oauth/start", data={"csrf_token": csrf}, allow_redirects=False)
    authorize = r.headers["location"]
    form = dict(parse_qsl(urlparse(authorize).query))
    form.update(user_id=BUYERS[buyer - 1], decision="approve")
    r = s.post(f"{base}/sandbox/oauth2/auth", data=form, allow_redirects=False)
    s.get(r.headers["location"], allow_redirects=False)
    compose = s.get(f"{base}/compose").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', compose).group(1)
    return s, csrf, key


def rss_kb(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="http://127.0.0.1:8080")
    p.add_argument("--uploads", type=int, default=10)
    p.add_argument("--size", type=int, default=4_999_000)
    args = p.parse_args()
    pid = int(subprocess.check_output(["pgrep", "-f", "kenar-chat sandbox"]).split()[0])
    chats = ((post, buyer) for post in range(1, 20) for buyer in range(1, 5))
    people = []
    for post, buyer in chats:
        if len(people) == args.uploads:
            break
        person = connect(args.base, post, buyer)
        if person:
            people.append(person)
    pdf = b"%PDF-1.7\n" + b"x" * (args.size - 9)
    before, _ = rss_kb(pid)
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append(rss_kb(pid)[0])
            time.sleep(0.02)

    def send(person, i, results):
        s, csrf, key = person
        r = s.post(
            f"{args.base}/compose",
            data={"csrf_token": csrf, "idempotency_key": key, "text": "فهرست قیمت", "action": "send"},
            files={"media": (f"prices-{i}.pdf", pdf, "application/pdf")},
            allow_redirects=False,
        )
        results[i] = (r.status_code, r.headers.get("location", ""))

    sampler = threading.Thread(target=sample)
    sampler.start()
    results = [None] * len(people)
    started = time.time()
    threads = [threading.Thread(target=send, args=(person, i, results)) for i, person in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - started
    done.set()
    sampler.join()
    after, hwm = rss_kb(pid)
    ok = sum(1 for status, location in results if status == 303 and "/status" in location)
    print(f"{ok} of {len(people)} sends of {args.size} bytes accepted in {took:.2f} s")
    print(f"RSS before {before / 1024:.1f} MB, highest sampled {max(samples) / 1024:.1f} MB "
          f"({len(samples)} samples), after {after / 1024:.1f} MB, process peak (VmHWM) {hwm / 1024:.1f} MB")


if __name__ == "__main__":
    main()
