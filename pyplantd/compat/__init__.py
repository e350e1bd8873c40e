"""PyPlant 0.6.0's names and interfaces over pyplantd's own, so PyPlant scripts run unchanged.

The engine calls in here only through small hooks (keyword aliases, spec adaptation, the
warehouse facade); nothing here is imported by `import pyplantd` beyond `names`.
"""
