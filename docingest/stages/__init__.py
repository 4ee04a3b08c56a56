"""Pipeline stages: plain typed functions over ``schemas`` records. None imports Prefect."""
