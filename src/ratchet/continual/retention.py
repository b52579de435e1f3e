"""Retention terms added to the cross-entropy of an increment, and FGM adversarial training.

- distillation_loss: LwF / logit knowledge distillation from the champion (Li & Hoiem, 2016;
  Hinton et al., 2015), restricted to the classes the champion knows.
- L2SP: an L2 pull toward the starting (champion's) weights (Li et al., 2018).
- EWC: the same pull, weighted per parameter by the diagonal Fisher information estimated on the
  champion's data (Kirkpatrick et al., 2017).
- Weight aligning (Zhao et al., 2020): after an increment that brings new classes, scale the new
  classes' head rows to the mean norm of the old classes' rows, removing the head's bias toward
  whatever it saw most recently.
- FGM: one adversarial step per batch along the normalised gradient of the word embeddings
  (Miyato et al., 2017), for robustness to small input changes.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                      classes: torch.Tensor | None = None) -> torch.Tensor:
    """T² · KL(teacher ‖ student) on temperature-softened distributions over `classes` (all if None).

    Zero exactly when the student's logits equal the teacher's (on those classes).
    """
    return _softened_kl(student_logits, teacher_logits, temperature, classes, "batchmean")


def distillation_per_example(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                             classes: torch.Tensor | None = None) -> torch.Tensor:
    """`distillation_loss` of each example (their mean is `distillation_loss`, up to rounding)."""
    return _softened_kl(student_logits, teacher_logits, temperature, classes, "none").sum(dim=-1)


def _softened_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                 classes: torch.Tensor | None, reduction: str) -> torch.Tensor:
    # batchmean is kept for the plain term (not the mean of the per-example sums): the same
    # summation order as before the per-example form existed, so default runs reproduce to the bit
    if classes is not None:
        student_logits, teacher_logits = student_logits[:, classes], teacher_logits[:, classes]
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction=reduction) * temperature ** 2


def rows_the_teacher_contradicts(teacher_logits: torch.Tensor, labels: torch.Tensor,
                                 classes: torch.Tensor) -> torch.Tensor:
    """True where a row's label is one of `classes` (those the teacher knows) and the teacher's
    answer among them is another class: distilling there pulls the student away from the label.

    A row of a class the teacher has not learned is never contradicted (its old-class answers are
    what LwF keeps); in a domain-incremental batch (old labels, new kind of text) these rows are
    the ones the batch exists to correct.
    """
    known = torch.isin(labels, classes)
    answers = classes[teacher_logits[:, classes].argmax(dim=-1)]
    return known & (answers != labels)


def feature_distances(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Per example, the squared distance between student and teacher text vectors.

    Feature distillation (as in Hou et al. 2019's less-forget constraint or PODNet, here in plain
    squared distance). Logit distillation over the old classes only constrains their logits'
    differences: with two old classes, one number per example, so the text vectors can drift far
    while it stays near zero. Applied to the replayed rows only: the old examples keep the vectors
    the head learned to read, the new data stays free to move the representation (measured on BBC:
    applied to every row at weight 1, it stopped tech and sport from being learned, 0.58).
    """
    return ((student_features.float() - teacher_features.float()) ** 2).sum(dim=-1)


def text_vector_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose output the classifier head reads: BERT's pooler (or ratchet's mean pooler)."""
    poolers = sorted(((name, m) for name, m in model.named_modules() if name.endswith("pooler")),
                     key=lambda item: len(item[0]))
    if not poolers:
        raise ValueError("the model has no pooler: feature distillation needs the text vector the head reads")
    return poolers[0][1]   # the outermost: under LoRA, the wrapper that runs the trained copy


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


class WeightAnchor:
    """A quadratic pull toward anchor weights: Σ w_i (θ_i − θ*_i)², times weight / 2.

    With unit importance w this is L2-SP; with the diagonal Fisher it is EWC. The penalty is zero
    at the anchor. Anchors and importances live on the parameters' device.

    `free_classes`: head rows (weights and bias) of classes the champion never learned. Their
    anchor is the random initialisation, and pulling toward it stops the new classes from being
    learned (measured on BBC: L2-SP at weight 100 left entertainment at 0.00-0.29), so they get
    importance 0.
    """

    def __init__(self, model: torch.nn.Module, weight: float,
                 importance: dict[str, torch.Tensor] | None = None,
                 free_classes: list[int] | None = None) -> None:
        self.weight = weight
        params = trainable_parameters(model)
        self.anchor = {name: p.detach().clone() for name, p in params.items()}
        self.importance = importance
        if free_classes:
            self.importance = _free_head_rows(model, params, importance, free_classes)

    def penalty(self, model: torch.nn.Module) -> torch.Tensor:
        params = trainable_parameters(model)
        total = next(iter(params.values())).new_zeros(())
        for name, anchor in self.anchor.items():
            diff = (params[name] - anchor) ** 2
            if self.importance is not None:
                diff = diff * self.importance[name]
            total = total + diff.sum()
        return 0.5 * self.weight * total


def _free_head_rows(model: torch.nn.Module, params: dict[str, torch.nn.Parameter],
                    importance: dict[str, torch.Tensor] | None, free_classes: list[int]) -> dict[str, torch.Tensor]:
    """`importance` (unit where None) with the head rows of `free_classes` set to zero."""
    head = classifier_head(model)
    head_params = {id(head.weight), id(head.bias) if head.bias is not None else None}
    out = {}
    for name, p in params.items():
        weight = importance[name].clone() if importance is not None else torch.ones_like(p)
        if id(p) in head_params:
            weight[free_classes] = 0.0
        out[name] = weight
    return out


def fisher_diagonal(model: torch.nn.Module, batches: list[dict], labels: torch.Tensor,
                    batch_size: int) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher information of the trainable parameters, averaged over examples.

    `batches` are tokenised mini-batches (already on the model's device) covering `labels` in order.
    The result is normalised to mean 1, so the EWC weight means the same across models and data.
    """
    params = trainable_parameters(model)
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it predicts
    count = 0
    for position, batch in enumerate(batches):
        target = labels[position * batch_size:(position + 1) * batch_size]
        model.zero_grad(set_to_none=True)
        logits = model(**batch).logits
        F.cross_entropy(logits, target, reduction="sum").backward()
        for name, p in params.items():
            if p.grad is not None:
                fisher[name] += p.grad.detach() ** 2
        count += len(target)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    mean = sum(f.sum() for f in fisher.values()) / sum(f.numel() for f in fisher.values())
    scale = 1.0 / float(mean) if float(mean) > 0 else 1.0
    return {name: f * scale for name, f in fisher.items()} if count else fisher


class FGM:
    """Fast Gradient Method on the word embeddings' output (works whether or not they are frozen).

    Use: `with fgm.capture(): clean loss backward`, then `fgm.adversarial_step(loss_fn)`, which runs
    `loss_fn` once more with the embeddings moved by ε·g/‖g‖ and back-propagates its loss too.
    """

    def __init__(self, model: torch.nn.Module, epsilon: float) -> None:
        self.epsilon = epsilon
        self._module = model.get_input_embeddings()
        self._output: torch.Tensor | None = None
        self._delta: torch.Tensor | None = None
        self._handle = self._module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self._delta is not None:
            return output + self._delta
        if not output.requires_grad:  # frozen embeddings: a leaf here, so its gradient is recorded
            output = output.detach().requires_grad_(True)
        else:
            output.retain_grad()
        self._output = output
        return output

    def adversarial_step(self, loss_fn: Callable[[], torch.Tensor]) -> None:
        """Call after the clean backward pass; adds the adversarial loss's gradients."""
        grad = None if self._output is None else self._output.grad
        self._output = None
        if grad is None:
            return
        norm = torch.norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return
        self._delta = (self.epsilon * grad / norm).detach()
        try:
            loss_fn().backward()
        finally:
            self._delta = None

    def remove(self) -> None:
        self._handle.remove()


def classifier_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The trainable output layer (for LoRA, the saved copy of the classifier)."""
    heads = [(name, m) for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and "classifier" in name and m.weight.requires_grad]
    if not heads:
        raise ValueError("the model has no trainable classifier head to align")
    return heads[-1][1]


def align_head(model: torch.nn.Module, old_classes: list[int], new_classes: list[int]) -> float | None:
    """Weight aligning: scale the new classes' rows (and biases) to the old classes' mean row norm.

    Returns the factor applied, or None when there is nothing to align.
    """
    if not old_classes or not new_classes:
        return None
    head = classifier_head(model)
    with torch.no_grad():
        norms = head.weight.norm(dim=1)
        factor = float(norms[old_classes].mean() / norms[new_classes].mean())
        head.weight[new_classes] *= factor
        if head.bias is not None:
            head.bias[new_classes] *= factor
    return factor
