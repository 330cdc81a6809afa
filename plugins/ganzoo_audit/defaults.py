"""The audit's defaults, shared by `audit()` and the CLI; a module of its own so that `ganzoo --help` imports no torch."""

DEFAULTS = {"n": 1000, "features": "pixels", "q": 0.01, "k": 5, "cells": 3, "seed": 0, "top": 16}
