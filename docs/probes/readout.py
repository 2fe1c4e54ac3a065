"""A linear read-out for the probes that ask what a gist stores (kind_probe.py, store_probe.py): a ridge
classifier scored by 5-fold cross-validation, its strength chosen inside each training fold, so no fold's
score chose anything.

    from readout import cross_validated      # docs/probes/ on the path, as when a probe runs
    cross_validated(features, labels)        # (documents, features) doubles, (documents,) class ids -> accuracy
"""
import torch

FOLDS, RIDGES = 5, (1e-1, 1e0, 1e1, 1e2, 1e3)


def split_scores(x: torch.Tensor, labels: dict, train: torch.Tensor, test: torch.Tensor) -> dict:
    """{ridge: {name: accuracy on ``test``}} of one-vs-rest least squares fitted on ``train``, in dual form (few
    documents, many features): the Gram matrices are made once per split and shared by every strength and label."""
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    a, b = (x[train] - mean) / std, (x[test] - mean) / std
    gram, cross = a @ a.T, b @ a.T
    targets = {name: torch.nn.functional.one_hot(label[train], int(label.max()) + 1).double() for name, label in labels.items()}
    stacked = torch.cat(list(targets.values()), dim=1)
    scores = {}
    for ridge in RIDGES:
        predicted = cross @ torch.linalg.solve(gram + ridge * a.shape[1] * torch.eye(len(a), dtype=a.dtype), stacked)
        scores[ridge], column = {}, 0
        for name, target in targets.items():
            width = target.shape[1]
            scores[ridge][name] = (predicted[:, column:column + width].argmax(1) == labels[name][test]).double().mean().item()
            column += width
    return scores


def cross_validated(x: torch.Tensor, labels):
    """Accuracy of the read-out of ``labels`` (a tensor of class ids, or a dict of them: then a dict of accuracies)
    from ``x`` (documents, features), averaged over 5 folds; each label's strength chosen inside the training fold."""
    named = labels if isinstance(labels, dict) else {"": labels}
    folds = torch.arange(len(x)) % FOLDS
    totals = dict.fromkeys(named, 0.0)
    for fold in range(FOLDS):
        train, test = (folds != fold).nonzero()[:, 0], (folds == fold).nonzero()[:, 0]
        inner = torch.arange(len(train)) % (FOLDS - 1)       # the ridge strength, chosen inside the training fold
        inner_scores = [split_scores(x, named, train[inner != i], train[inner == i]) for i in range(FOLDS - 1)]
        outer = split_scores(x, named, train, test)
        for name in named:
            best = max(RIDGES, key=lambda r: sum(scores[r][name] for scores in inner_scores))
            totals[name] += outer[best][name] / FOLDS
    return totals if isinstance(labels, dict) else totals[""]
