"""Methods that train: lottery tickets, one-shot, RigL, SET, GMP.

A tiny ResNet-20 (width 4, 1x8x8 inputs) is trained with plain SGD for a handful of
steps: enough for weights, bases and masks to move, so rewinding, schedules and
mask updates can be checked against numbers computed here from their definitions.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ip.interspace import basis_parameter_names, fb_overhead_params, to_interspace
from ip.masks import MaskEnforcer, kept_budget, mask_summary, prunable_parameters
from ip.models import get_model
from ip.pruning import find_masks, make_train_hook

SPARSITIES = (0.5, 0.9, 0.98, 0.995)



def tiny(fb_init=None, seed=0, share="layer"):
    torch.manual_seed(seed)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=4)
    return model if fb_init is None else to_interspace(model, fb_init, share=share)


def make_batches(n=4, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n)]


def kept(masks):
    return sum(int(m.sum()) for m in masks.values())


class RecordingTrainer:
    """train_fn(model, masks, start_step, keep_step): SGD with masks enforced from global step
    ``start_step`` to the end of ``epochs`` epochs, recording every call; returns the state
    after step ``keep_step``."""

    def __init__(self, batches, steps_per_epoch=2, lr=0.05, epochs=3):
        self.batches = batches
        self.steps_per_epoch = steps_per_epoch
        self.lr = lr
        self.total = epochs * steps_per_epoch
        self.calls = []

    def __call__(self, model, masks, start_step=0, keep_step=None):
        record = {"start_step": start_step, "keep_step": keep_step, "kept": kept(masks),
                  "masks": {n: m.clone() for n, m in masks.items()},
                  "state_before": copy.deepcopy(model.state_dict())}
        enforcer = MaskEnforcer(model, masks)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)
        handle = enforcer.attach(optimizer)
        model.train()
        kept_state = copy.deepcopy(model.state_dict()) if keep_step == start_step else None
        for step in range(start_step, self.total):
            x, y = self.batches[step % len(self.batches)]
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            if step + 1 == keep_step:
                kept_state = copy.deepcopy(model.state_dict())
        handle.remove()
        enforcer.remove()
        record["state_after"] = copy.deepcopy(model.state_dict())
        record["kept_state"] = kept_state
        self.calls.append(record)
        return kept_state


def masked(state, masks):
    out = dict(state)
    for n, m in masks.items():
        out[n] = state[n] * m
    return out


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------
# lottery ticket and one-shot

@pytest.mark.parametrize("fb_init", [None, "dct"])
def test_lottery_ticket_rewinds_exactly_and_reaches_the_budget(fb_init):
    model = tiny(fb_init)
    init = copy.deepcopy(model.state_dict())
    trainer = RecordingTrainer(make_batches(), epochs=3)
    rounds, rewind_step, epochs, sparsity = 3, 2, 3, 0.9
    masks, start = find_masks("lt", model, sparsity, train_fn=trainer,
                              epochs=epochs, options={"rounds": rounds, "rewind_step": rewind_step})
    total = sum(p.numel() for p in prunable_parameters(model).values())
    budget = kept_budget(model, sparsity)
    # call 0: the dense run of the whole schedule, keeping the weights after the rewind step;
    # calls 1..R-1: rewind step -> end with the round's mask
    assert [(c["start_step"], c["keep_step"]) for c in trainer.calls] == \
           [(0, rewind_step)] + [(rewind_step, None)] * (rounds - 1)
    assert states_equal(trainer.calls[0]["state_before"], init)
    rewind = trainer.calls[0]["kept_state"]
    expected_kept = [total] + [round(total * (budget / total) ** (r / rounds)) for r in range(1, rounds)]
    assert [c["kept"] for c in trainer.calls] == expected_kept
    assert kept(masks) == budget
    for r, call in enumerate(trainer.calls):
        if r > 0:   # every retraining starts from the rewind weights (masked): lambda, F, BN alike
            assert states_equal(call["state_before"], masked(rewind, call["masks"]))
        after = call["state_after"]
        new_masks = trainer.calls[r + 1]["masks"] if r + 1 < len(trainer.calls) else masks
        for n in new_masks:
            assert not bool((new_masks[n] & ~call["masks"][n]).any())  # pruned stays pruned
        # the entries removed in this round have the smallest trained |theta| among those kept before
        survivors = torch.cat([after[n][new_masks[n]].abs() for n in new_masks])
        removed = torch.cat([after[n][call["masks"][n] & ~new_masks[n]].abs() for n in new_masks])
        assert removed.numel() > 0 and float(removed.max()) <= float(survivors.min())
    assert states_equal(start, masked(rewind, masks))
    if fb_init is not None:
        fb_name = basis_parameter_names(model)[0]
        assert not torch.equal(trainer.calls[-1]["state_after"][fb_name], rewind[fb_name])  # F was trained ...
        assert torch.equal(start[fb_name], rewind[fb_name])  # ... and rewound
        assert not torch.equal(rewind[fb_name], init[fb_name])
    assert states_equal(model.state_dict(), init)  # the caller's model is back at its initialisation


def test_oneshot_prunes_trained_weights_once():
    model = tiny("dct")
    init = copy.deepcopy(model.state_dict())
    trainer = RecordingTrainer(make_batches(), epochs=2)
    masks, start = find_masks("oneshot", model, 0.9, train_fn=trainer, epochs=2)
    assert len(trainer.calls) == 1 and trainer.calls[0]["start_step"] == 0
    trained = trainer.calls[0]["state_after"]
    assert kept(masks) == kept_budget(model, 0.9)
    assert states_equal(start, masked(trained, masks))
    survivors = torch.cat([trained[n][m].abs() for n, m in masks.items()])
    removed = torch.cat([trained[n][~m].abs() for n, m in masks.items()])
    assert float(removed.max()) <= float(survivors.min())
    assert states_equal(model.state_dict(), init)


# ---------------------------------------------------------------------------------------
# GMP

def test_gmp_follows_the_cubic_schedule_at_every_pruning_step():
    model = tiny("dct")
    sparsity, total_steps = 0.95, 100
    options = {"start_fraction": 0.1, "end_fraction": 0.75, "interval": 7}
    masks, start = find_masks("gmp", model, sparsity, options=options)
    assert start is None and all(bool(m.all()) for m in masks.values())
    enforcer = MaskEnforcer(model, masks)
    hook = make_train_hook("gmp", model, masks, enforcer, total_steps=total_steps, sparsity=sparsity,
                           options=options)
    total = sum(m.numel() for m in masks.values())
    budget = kept_budget(model, sparsity)
    t0, t_end = 10, 75
    pruning_steps = set(range(t0, t_end + 1, 7)) | {t_end}
    params = prunable_parameters(model)
    g = torch.Generator().manual_seed(0)
    previous = {n: m.clone() for n, m in enforcer.masks.items()}
    seen, expected_changes, last_kept = [], [], total
    for step in range(1, total_steps + 1):
        with torch.no_grad():  # stand-in for training: weights move between pruning steps
            for p in params.values():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
            enforcer.apply()
        weights = {n: p.detach().clone() for n, p in params.items()}
        hook.after_step(step)
        now = enforcer.masks
        if step in pruning_steps:
            s_t = (1 - budget / total) * (1 - (1 - (step - t0) / (t_end - t0)) ** 3)
            target = budget if step == t_end else round((1 - s_t) * total)
            assert kept(now) == target, step
            if target < last_kept:
                expected_changes.append(step)
            last_kept = target
            assert hook.current_sparsity() == pytest.approx(s_t, abs=1 / total)
            survivors = torch.cat([weights[n][now[n]].abs() for n in now])
            removed = torch.cat([weights[n][previous[n] & ~now[n]].abs() for n in now])
            if removed.numel():
                assert float(removed.max()) <= float(survivors.min())
                seen.append(step)
        else:
            assert all(torch.equal(now[n], previous[n]) for n in now), step
        assert all(not bool((now[n] & ~previous[n]).any()) for n in now)
        previous = {n: m.clone() for n, m in now.items()}
    assert kept(enforcer.masks) == budget
    assert seen == expected_changes and len(seen) >= 8


def test_gmp_resumed_after_the_end_still_reaches_the_budget():
    model = tiny()
    masks, _ = find_masks("gmp", model, 0.9)
    enforcer = MaskEnforcer(model, masks)
    hook = make_train_hook("gmp", model, masks, enforcer, total_steps=100, sparsity=0.9,
                           options={"interval": 10})
    hook.after_step(40)
    state = hook.state_dict()
    partial = kept(enforcer.masks)
    model2 = copy.deepcopy(model)
    enforcer2 = MaskEnforcer(model2, masks)
    hook2 = make_train_hook("gmp", model2, masks, enforcer2, total_steps=100, sparsity=0.9,
                            options={"interval": 10})
    hook2.load_state_dict(state)
    assert kept(enforcer2.masks) == partial < sum(m.numel() for m in masks.values())
    hook2.after_step(90)  # past t_end = 75: the missed final step still happens
    assert kept(enforcer2.masks) == kept_budget(model, 0.9)


# ---------------------------------------------------------------------------------------
# RigL and SET

def run_dst(method, model, masks, total_steps, options, batches, generator=None, start=1, resume=None,
            checks=None, stop=None):
    enforcer = MaskEnforcer(model, masks, keep_dense_grad=(method == "rigl"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    enforcer.attach(optimizer)
    hook = make_train_hook(method, model, masks, enforcer, total_steps=total_steps, sparsity=0.9,
                           generator=generator, options=options, optimizer=optimizer)
    if resume is not None:
        # the order a training loop resumes in: masks first, then the stored weights
        model_state, hook_state, optimizer_state = resume
        hook.load_state_dict(hook_state)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
    params = prunable_parameters(model)
    for step in range(start, (stop or total_steps) + 1):
        x, y = batches[step % len(batches)]
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        before = {n: m.clone() for n, m in enforcer.masks.items()}
        weights = {n: p.detach().clone() for n, p in params.items()}
        grads = {n: g.clone() for n, g in enforcer.dense_grads.items()}
        hook.after_step(step)
        if checks is not None:
            checks(step, before, enforcer.masks, weights, grads, params, hook)
    return hook, enforcer, optimizer


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_dst_updates_keep_counts_exact_and_start_new_entries_at_zero(method):
    model = tiny("dct")
    total_steps = 40
    options = {"interval": 5, "alpha": 0.3, "stop_fraction": 0.75}
    masks, start = find_masks(method, model, 0.9, generator=torch.Generator().manual_seed(0))
    assert start is None and kept(masks) == kept_budget(model, 0.9)
    layer_counts = {n: int(m.sum()) for n, m in masks.items()}
    end_step = 30
    updates = []

    def checks(step, before, after, weights, grads, params, hook):
        assert {n: int(m.sum()) for n, m in after.items()} == layer_counts
        changed = sum(int((before[n] != after[n]).sum()) for n in after)
        if step % 5 or step >= end_step:
            assert changed == 0, step
            return
        fraction = 0.3 / 2 * (1 + math.cos(math.pi * step / end_step))
        assert hook.history[-1]["drop_fraction"] == pytest.approx(fraction)
        for n in after:
            grown = after[n] & ~before[n]
            dropped = before[n] & ~after[n]
            assert int(grown.sum()) == int(dropped.sum()) <= int(fraction * layer_counts[n])
            assert bool((params[n].detach()[grown] == 0).all())  # new entries start at exactly zero
            if dropped.any():
                # the k = floor(f n) dropped entries had the smallest |theta| among the active ones; an
                # entry may be dropped and grown back at once, so up to k - |dropped| survivors may be smaller
                k = int(fraction * layer_counts[n])
                smaller = weights[n][before[n] & after[n]].abs() < weights[n][dropped].abs().max()
                assert int(smaller.sum()) <= k - int(dropped.sum())
            if method == "rigl" and grown.any():
                # the grown entries have the largest dense |grad| among the entries left inactive
                assert float(grads[n][grown].abs().min()) >= float(grads[n][~after[n]].abs().max())
        updates.append(changed)

    run_dst(method, model, masks, total_steps, options, make_batches(), torch.Generator().manual_seed(1),
            checks=checks)
    assert len(updates) == 5 and all(c > 0 for c in updates)


def test_rigl_needs_dense_gradients_and_pai_has_no_hook():
    model = tiny()
    masks, _ = find_masks("rigl", model, 0.9)
    with pytest.raises(ValueError, match="keep_dense_grad"):
        make_train_hook("rigl", model, masks, MaskEnforcer(model, masks), total_steps=10, sparsity=0.9)
    for method in ("dense", "snip", "lt", "oneshot"):
        assert make_train_hook(method, model, masks, MaskEnforcer(model, masks), total_steps=10,
                               sparsity=0.9) is None


def test_rigl_starts_from_erk_and_set_resumes_identically():
    model = tiny()
    # ``distribution`` is the random method's; RigL keeps its ERK start unless DstOptions.distribution says otherwise
    masks, _ = find_masks("rigl", model, 0.9, distribution="uniform", generator=torch.Generator().manual_seed(0))
    densities = {n: float(m.float().mean()) for n, m in masks.items()}
    # ERK: density ~ (c_in + c_out + k + k) / (c_in c_out k k): 4x4x3x3 layers are denser than 16x16x3x3
    assert densities["layer1.0.conv1.weight"] == pytest.approx((14 / 144) / (38 / 2304) * densities["layer3.1.conv1.weight"],
                                                               abs=1 / 144)
    assert densities["conv1.weight"] == 1.0
    uniform, _ = find_masks("rigl", model, 0.9, options={"distribution": "uniform"})
    assert all(abs(int(m.sum()) - 0.1 * m.numel()) < 1 for m in uniform.values())

    batches = make_batches()
    options = {"interval": 3, "stop_fraction": 0.9}
    reference = copy.deepcopy(model)
    full_hook, full_enforcer, _ = run_dst("set", reference, masks, 20, options, batches,
                                          torch.Generator().manual_seed(7))
    first = copy.deepcopy(model)
    hook, _, optimizer = run_dst("set", first, masks, 20, options, batches, torch.Generator().manual_seed(7), stop=10)
    saved = (copy.deepcopy(first.state_dict()), hook.state_dict(), copy.deepcopy(optimizer.state_dict()))
    resumed = copy.deepcopy(model)
    resumed_hook, resumed_enforcer, _ = run_dst("set", resumed, masks, 20, options, batches,
                                                torch.Generator().manual_seed(12345), start=11, resume=saved)
    assert all(torch.equal(full_enforcer.masks[n], resumed_enforcer.masks[n]) for n in masks)
    assert states_equal(reference.state_dict(), resumed.state_dict())
    assert len(full_hook.history) == len(resumed_hook.history) == 5
    assert sum(int((full_enforcer.masks[n] != masks[n]).sum()) for n in masks) > 0


# ---------------------------------------------------------------------------------------
# exact budgets of the training methods

@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_training_methods_keep_exact_counts(sparsity):
    model = tiny("dct", share="network")
    total = sum(p.numel() for p in prunable_parameters(model).values())
    fb = fb_overhead_params(model)
    batches = make_batches(n=1)
    options = {"lt": {"rounds": 2, "rewind_step": 1}, "gmp": {"interval": 2}, "rigl": {"interval": 2},
               "set": {"interval": 2}}
    for fb_in_budget in (False, True):
        expected = round((1 - sparsity) * total) - (fb if fb_in_budget else 0)
        for method in ("lt", "oneshot", "rigl", "set", "gmp"):
            masks, start = find_masks(method, model, sparsity, fb_in_budget=fb_in_budget,
                                      train_fn=RecordingTrainer(batches, steps_per_epoch=1, epochs=2), epochs=2,
                                      options=options.get(method))
            if method == "gmp":
                trained = copy.deepcopy(model)
                enforcer = MaskEnforcer(trained, masks)
                hook = make_train_hook("gmp", trained, masks, enforcer, total_steps=10, sparsity=sparsity,
                                       options=options["gmp"], fb_in_budget=fb_in_budget)
                for step in range(1, 11):
                    hook.after_step(step)
                masks = enforcer.masks
                enforcer.remove()
            assert mask_summary(masks).kept_params == expected, (method, sparsity, fb_in_budget)
            if method in ("lt", "oneshot"):
                assert all(not bool(start[n][~m].any()) for n, m in masks.items())  # start state is masked
