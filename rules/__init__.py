# Marks rules/ as the package data folder `gandoctor.builtin_rules`, so `pip install .` ships the rule files.
