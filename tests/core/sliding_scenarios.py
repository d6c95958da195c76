"""Sliding scenarios shared by the golden fixture generator and the test (adversarial scripts included)."""
import random, re

def by_number(q, c):
    m = re.search(r"(\d+)", c); return int(m.group(1)) if m else 0

def ids(order): return " > ".join(f"[{i}]" for i in order)

def adversarial(q, contents):
    n = len(contents); rng = random.Random(f"{q}|{n}|{contents[0]}")
    kind = rng.randrange(6)
    perm = list(range(1, n + 1)); rng.shuffle(perm)
    if kind == 0: return f"<think>x</think> <answer>{ids(perm)}</answer>"
    if kind == 1: return f"<think>dup</think> <answer>{ids(perm[:3] + perm[:2])}</answer>"
    if kind == 2: return f"<think>bad</think> <answer>[0] > [{n + 5}] > {ids(perm[n//2:])}</answer>"
    if kind == 3: return "no tags at all [2] > [1]"
    if kind == 4: return f"<answer>{ids(perm)}"
    return f"<think>{' '.join(['w'] * 40)}"

SCENARIOS = {
    "by_number_100": dict(script="by_number", docs=[f"passage score {i}" for i in range(100)], opts={}),
    "random_60_w10_s5": dict(script="by_number", docs=[f"score {s}" for s in random.Random(7).sample(range(1000), 60)], opts=dict(window_size=10, step=5)),
    "adversarial_45": dict(script="adversarial", docs=[f"doc {(i * 37) % 101} text" for i in range(45)], opts=dict(reasoning_budget=130)),
    "adversarial_23_w7_s3": dict(script="adversarial", docs=[f"item {(i * 13) % 29}" for i in range(23)], opts=dict(window_size=7, step=3, reasoning_budget=130)),
    "short_3": dict(script="by_number", docs=["doc 2", "doc 9", "doc 4"], opts={}),
}
SCRIPTS = {"by_number": None, "adversarial": adversarial}
