"""classifier: the domain feature network, trained once on the real training split."""

from dcgan import paths
from dcgan.config import load_config
from dcgan.errors import run_stage
from dcgan.evaluate.classifier import fit_classifier
from dcgan.io import write_json


def main() -> None:
    cfg = load_config()
    report = fit_classifier(cfg)
    write_json(paths.CLASSIFIER_REPORT, report)
    if "classifier_test_accuracy" in report:
        print(f"classifier test accuracy {report['classifier_test_accuracy']:.4f} -> {paths.CLASSIFIER}")
    else:
        print(f"classifier {report['classifier']}")


if __name__ == "__main__":
    run_stage(main)
