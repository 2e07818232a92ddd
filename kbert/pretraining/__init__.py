"""Pre-training data: corpus reading, NSP pairs, masking, records, manifest, writing.

The public entry points are re-exported by `kbert.pretraining_data`; the modules here each
do one job:

- `settings`: `PretrainingDataSettings` and `PretrainingDataError` (flag-naming validation)
- `corpus`: input globs → files → documents (one sentence per line, blank line = new doc)
- `pairs`: google-research/bert's document-aware A/B pairs and random truncation
- `masking`: static 15% / 80-10-10 masking (whole-word option)
- `dynamic_masking`: the same rules in-graph for tf.data (new masks every epoch)
- `examples`: chunks (the unit of work) → masked `[CLS] A [SEP] B [SEP]` examples
- `records`: tf.train.Example with google's feature names and dtypes
- `manifest`: `manifest.json` (and per-worker manifests) reading/writing/merging
- `writer`: parallel, deterministic, atomic shard writing
"""
