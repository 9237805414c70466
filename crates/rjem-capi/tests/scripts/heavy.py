# A heavy, deterministic Python workload: dict/list/str churn, tens of MB of
# JSON, regular expressions and threads. Prints checksums only.
import hashlib, json, re, threading

def churn(seed):
    d = {}
    for i in range(200_000):
        k = f"k{(i * 7919 + seed) % 50_000}"
        d.setdefault(k, []).append(str(i) * (i % 5 + 1))
        if i % 3 == 0:
            d.pop(f"k{(i * 31 + seed) % 50_000}", None)
    return sum(len(v) for v in d.values())

doc = {f"item{i}": {"id": i, "name": "x" * (i % 97), "tags": [str(j) for j in range(i % 13)],
                    "nested": {"a": [i, i * 2, {"b": str(i)}]}} for i in range(120_000)}
text = json.dumps(doc, sort_keys=True)
back = json.loads(text)
assert back == doc
print("json bytes", len(text), hashlib.sha256(text.encode()).hexdigest()[:16])

words = re.findall(r'"name": "(x{10,20})"', text)
subbed = re.sub(r'"id": (\d+)', lambda m: '"id": ' + str(int(m.group(1)) * 3), text[:5_000_000])
print("regex", len(words), hashlib.sha256(subbed.encode()).hexdigest()[:16])

results = [0] * 4
def work(t):
    results[t] = churn(t)
threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("threads", results)

s = []
for i in range(300_000):
    s.append(("%d-" % i) * (i % 7))
joined = "".join(s)
print("strings", len(joined), hashlib.md5(joined.encode()).hexdigest()[:16])
