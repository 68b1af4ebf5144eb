"""The snippets of swallowcode's built-in sample, one table per case (pipelines/sample_code.py writes them).

All are original, written for Refinery (no licence attached), and short. clean-* compile and lint well (pylint >= 7
after the comment penalty), syntax-* do not compile, lint-* compile but lint badly, comments-* lint clean but are
mostly comments (SwallowCode's penalty drops them), other-* are not Python and empty-* hold no text.
"""
from __future__ import annotations

CLEAN = {
    "clean-word-count": '''from collections import Counter


def word_counts(text):
    return Counter(text.lower().split())


def most_common(text, n=3):
    return [word for word, _ in word_counts(text).most_common(n)]
''',
    "clean-stack": '''class Stack:
    """A last-in, first-out list of items."""

    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()

    def __len__(self):
        return len(self.items)
''',
    "clean-csv-total": '''import csv


def column_total(path, column):
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(float(row[column]) for row in csv.DictReader(handle))
''',
    "clean-fibonacci": '''def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
''',
    "clean-binary-search": '''def binary_search(items, target):
    low, high = 0, len(items) - 1
    while low <= high:
        middle = (low + high) // 2
        if items[middle] == target:
            return middle
        if items[middle] < target:
            low = middle + 1
        else:
            high = middle - 1
    return -1
''',
    "clean-point": '''import math
from dataclasses import dataclass


@dataclass
class Point:
    """A point in the plane."""

    x: float
    y: float

    def distance_to(self, other):
        return math.hypot(self.x - other.x, self.y - other.y)
''',
    "clean-palindrome": '''def is_palindrome(text):
    letters = [c.lower() for c in text if c.isalnum()]
    return letters == letters[::-1]
''',
    "clean-settings": '''import json
from pathlib import Path


def load_settings(path, defaults):
    settings = dict(defaults)
    file = Path(path)
    if file.exists():
        settings.update(json.loads(file.read_text(encoding="utf-8")))
    return settings
''',
    "clean-primes": '''def primes_below(limit):
    sieve = [True] * max(limit, 2)
    sieve[0] = sieve[1] = False
    for n in range(2, int(limit ** 0.5) + 1):
        if sieve[n]:
            for multiple in range(n * n, limit, n):
                sieve[multiple] = False
    return [n for n in range(limit) if sieve[n]]
''',
    "clean-moving-average": '''from collections import deque


def moving_average(values, window):
    recent = deque(maxlen=window)
    averages = []
    for value in values:
        recent.append(value)
        averages.append(sum(recent) / len(recent))
    return averages
''',
    "clean-inventory": '''class Inventory:
    """Counts of the items in a small shop."""

    def __init__(self):
        self.counts = {}

    def add(self, name, quantity=1):
        self.counts[name] = self.counts.get(name, 0) + quantity

    def remove(self, name, quantity=1):
        available = self.counts.get(name, 0)
        if quantity > available:
            raise ValueError(f"only {available} {name} left")
        self.counts[name] = available - quantity
''',
    "clean-roman": '''NUMERALS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
            (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def to_roman(number):
    parts = []
    for value, letters in NUMERALS:
        count, number = divmod(number, value)
        parts.append(letters * count)
    return "".join(parts)
''',
    "clean-median-commented": '''def median(values):
    ordered = sorted(values)  # a sorted copy leaves the caller's list alone
    middle = len(ordered) // 2
    if len(ordered) % 2:  # an odd count has one middle value
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
''',
}

SYNTAX = {
    "syntax-py2-print": '''def greet(name):
    print "Hello, " + name
''',
    "syntax-missing-colon": '''def area(width, height)
    return width * height
''',
    "syntax-unclosed-bracket": '''totals = [1, 2, 3
print(sum(totals))
''',
    "syntax-bad-indent": '''def shout(text):
return text.upper()
''',
    "syntax-py2-except": '''try:
    value = int("x")
except ValueError, err:
    value = 0
''',
}

LINT = {
    "lint-bare-except": '''import os
import sys
import json


def read_number(path):
    try:
        f = open(path)
        data = f.read()
        return int(data)
    except:
        pass
''',
    "lint-globals": '''count = 0
items = []


def add(x):
    global count
    global items
    count = count + 1
    items = items + [x]
    list = items
    return list
''',
    "lint-comparisons": '''def append_to(item, target=[]):
    target.append(item)
    return target


def compare(a, b):
    if a == None:
        return False
    if a == True:
        return b
    else:
        return not b
''',
    "lint-undefined": '''def total_price(items):
    for item in items:
        subtotal += item.price * quantity
    return subtotal
''',
}

COMMENTS = {
    "comments-gcd": '''# Greatest common divisor of two integers.
#
# This uses Euclid's algorithm, which is more than two thousand years old.
# The idea: the divisor of a and b also divides the remainder of a by b.
# So we replace (a, b) by (b, a % b) until b becomes zero.
# At that point a holds the answer.
#
# Examples:
#   gcd(12, 18) == 6
#   gcd(7, 5) == 1
#   gcd(0, 9) == 9
#
# Negative inputs are fine; the result is never negative.
# Zero and zero give zero.
#
# Why not math.gcd? It exists since Python 3.5 and is faster,
# but this file is meant for teaching, so the loop is spelled out.
#
# Complexity: the number of steps grows with the number of digits,
# never with the size of the numbers themselves (Lame, 1844).
#
# Change log:
#   v1: first version
#   v2: handle negative numbers
#   v3: more examples
#   v4: notes on speed
#
# Questions go to the maths club mailing list.
def gcd(a, b):
    # loop until b is zero
    while b:
        # swap in the remainder
        a, b = b, a % b
    # make the answer positive
    return abs(a)
''',
    "comments-commented-out": '''def clamp(value, low, high):
    # old version:
    # if value < low:
    #     value = low
    # if value > high:
    #     value = high
    # return value
    # second try:
    # if low > high:
    #     low, high = high, low
    # return sorted([low, value, high])[1]
    # third try, too clever:
    # return low if value < low else high if value > high else value
    # fourth try, with a loop over both bounds:
    # for bound, better in ((low, max), (high, min)):
    #     value = better(value, bound)
    # return value
    # fifth try, raising on bad bounds:
    # if low > high:
    #     raise ValueError("low > high")
    # return min(max(value, low), high)
    # sixth try, with numpy:
    # import numpy
    # return numpy.clip(value, low, high)
    # (numpy is too heavy for this)
    # TODO remove the above
    return max(low, min(value, high))
''',
}

OTHER = {
    "other-javascript": ("JavaScript", '''function sum(values) {
  return values.reduce((total, value) => total + value, 0);
}
'''),
    "other-go": ("Go", '''package main

func Max(a, b int) int {
\tif a > b {
\t\treturn a
\t}
\treturn b
}
'''),
}

EMPTY = {"empty-file": "\n\n"}
