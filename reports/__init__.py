"""The comparison report of a sweep: MLflow runs -> tidy frames -> Pareto fronts -> seaborn figures
-> tables beside the paper's figures -> one HTML page. Reads runs through bench.tracking only and
never imports the engine."""
