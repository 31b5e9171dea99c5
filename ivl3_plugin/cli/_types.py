"""argparse types shared by the sub-commands: a bad number is a one-line usage error naming the flag."""
from __future__ import annotations

import argparse


def number(kind, low=None, high=None, low_open=False, high_open=False, what=""):
    """An argparse type: ``kind`` (int/float) within [low, high] (open ends as asked), named in the error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value != value or (low is not None and (value <= low if low_open else value < low)) or \
                (high is not None and (value >= high if high_open else value > high)):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what}")
        return value
    return parse


POSITIVE_INT = number(int, 1, what="must be >= 1")
POSITIVE = number(float, 0, low_open=True, what="must be > 0")
