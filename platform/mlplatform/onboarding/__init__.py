"""Onboarding: a data scientist's tables become a checked model folder (``models init``, ``models validate``).

``contract`` checks and converts the tables, ``scaffold`` writes the model folder and its data, ``validate`` fits,
saves, loads and scores the model on a sample so mistakes surface here rather than in Airflow.
"""
