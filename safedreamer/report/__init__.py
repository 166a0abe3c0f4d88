"""Evaluation and reports: `evaluate` (eval.json, videos), open-loop prediction
reports, learning curves across seeds (`plot_runs`) and the paper's ranking table
(`final_table`). Heavy imports (JAX, matplotlib) happen inside the functions."""
