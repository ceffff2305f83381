"""The study's parameters: params.yaml as typed, validated models (``study.params``)."""
