# Marks rules/ as the package data folder `gandoctor.rules`, so `pip install .` ships the rule files.
