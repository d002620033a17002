"""The coverage benchmark (issue 24): SPAC against DPO and its controls on the review LM, in the regimes where the data
cover a good policy (and little else), a middling one, or are the starting model's own samples. Run it with
`python -m benchmarks.coverage.run`; the design and the results are in benchmarks/coverage/README.md."""
