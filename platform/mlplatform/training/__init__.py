"""Training as plain functions: training set -> split -> train -> evaluate -> register -> gate -> promote.

The Airflow DAG calls these functions task by task; tests and notebooks can call them directly.
"""
