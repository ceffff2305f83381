"""The controls of STUDY_SPEC section 6: mask shuffling keeps every layer's count and moves
its entries; the learning-rate control's validation slice is never trained on, and its
choice reads validation accuracy only."""
import pandas as pd
import pytest
import torch

from analysis.controls import best_scale, controls_table, lr_choice
from ip.controls import hold_out, shuffle_masks
from ip.data import PreparedData
from ip.masks import layer_name
from ip.experiment import RunSpec, build_model, initial_state
from ip.pruning import find_masks


def _random_masks(repr_: str, seed: int = 0, sparsity: float = 0.9):
    spec = RunSpec(method="random", repr=repr_, seed=seed, sparsity=sparsity, width=4, distribution="erk")
    model = build_model(spec, initial_state("resnet20", 4, 10, 1, seed), 10, 1)
    gen = torch.Generator().manual_seed(seed)
    masks, _ = find_masks("random", model, sparsity, generator=gen, distribution="erk")
    return masks


def test_shuffle_keeps_every_layers_count_and_moves_its_entries():
    masks = _random_masks("sp")
    shuffled = shuffle_masks(masks, seed=0)
    assert list(shuffled) == list(masks)
    for name, mask in masks.items():
        assert shuffled[name].shape == mask.shape and shuffled[name].dtype == torch.bool
        assert int(shuffled[name].sum()) == int(mask.sum()), name
    kept = sum(int(m.sum()) for m in masks.values())
    same = sum(int((masks[k] & shuffled[k]).sum()) for k in masks)
    # a uniform draw keeps an entry in place with probability density(layer): far below 1 at 90 % sparsity
    assert same < 0.5 * kept
    assert any(not torch.equal(masks[k], shuffled[k]) for k in masks if 0 < masks[k].sum() < masks[k].numel())


def test_shuffle_is_seeded_and_the_same_rule_for_sp_and_ip():
    sp, ip = _random_masks("sp"), _random_masks("ip")
    assert all(torch.equal(a, b) for a, b in zip(shuffle_masks(sp, 3).values(), shuffle_masks(sp, 3).values()))
    assert any(not torch.equal(a, b) for a, b in zip(shuffle_masks(sp, 3).values(), shuffle_masks(sp, 4).values()))
    # IP's coefficients under their own names, holding SP's kept entries: the same flat positions are drawn
    sp_of = {layer_name(k): k for k in sp}
    ip_like = {k: sp[sp_of[layer_name(k)]].reshape(ip[k].shape) for k in ip}
    assert set(ip_like) != set(sp) and all(ip[k].numel() == sp[sp_of[layer_name(k)]].numel() for k in ip)
    a, b = shuffle_masks(sp, 1), shuffle_masks(ip_like, 1)
    assert all(torch.equal(b[k].reshape(-1), a[sp_of[layer_name(k)]].reshape(-1)) for k in ip_like)


def _indexed_data(n: int = 200) -> PreparedData:
    """Images that carry their own index, so a split can be checked by identity."""
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    y = torch.arange(n) % 10
    return PreparedData(x, y, -x[:20], y[:20], x[:8], y[:8], num_classes=10)


def test_validation_slice_never_overlaps_the_training_images():
    data = _indexed_data()
    held = hold_out(data, 50, seed=0)
    val = set(held.x_val[:, 0, 0, 0].long().tolist())
    train = set(held.train.x_train[:, 0, 0, 0].long().tolist())
    assert len(val) == 50 and len(train) == 150
    assert not val & train and val | train == set(range(200))
    # the images trained on are exactly those the stage's loader draws from, in their original order
    assert held.train.x_train[:, 0, 0, 0].long().tolist() == sorted(train)
    loader = held.train.train_loader(batch_size=32, seed=0, augment=False)
    seen = {int(v) for xb, _ in loader.epoch(0) for v in xb[:, 0, 0, 0].long()}
    assert seen <= train and not seen & val
    assert torch.equal(held.train.x_test, data.x_test)
    assert torch.equal(hold_out(data, 50, seed=0).val_index, held.val_index)
    assert not torch.equal(hold_out(data, 50, seed=1).val_index, held.val_index)
    with pytest.raises(ValueError, match="validation slice"):
        hold_out(data, 200)


def _lr_runs(val: dict, test: dict) -> pd.DataFrame:
    rows = []
    for (repr_, scale), accs in val.items():
        for seed, acc in enumerate(accs):
            rows.append({"control": "lr", "method": "snip", "repr": repr_, "seed": seed, "lr_scale": scale,
                         "val_acc": acc, "test_acc": test[(repr_, scale)][seed]})
    return pd.DataFrame(rows)


def test_the_learning_rate_is_chosen_on_validation_accuracy_only():
    val = {("sp", 0.5): [0.80, 0.82], ("sp", 1.0): [0.78, 0.79], ("sp", 2.0): [0.70, 0.71],
           ("ip", 0.5): [0.75, 0.76], ("ip", 1.0): [0.79, 0.80], ("ip", 2.0): [0.81, 0.83]}
    # the test accuracy favours other scales everywhere: it must not move the choice
    test = {("sp", 0.5): [0.1, 0.1], ("sp", 1.0): [0.9, 0.9], ("sp", 2.0): [0.95, 0.95],
            ("ip", 0.5): [0.99, 0.99], ("ip", 1.0): [0.2, 0.2], ("ip", 2.0): [0.1, 0.1]}
    runs = _lr_runs(val, test)
    assert best_scale(runs) == {("snip", "ip"): 2.0, ("snip", "sp"): 0.5}
    shuffled_test = runs.assign(test_acc=runs["test_acc"].sample(frac=1.0, random_state=0).to_numpy())
    assert best_scale(shuffled_test) == best_scale(runs)
    chosen = lr_choice(runs).set_index("repr")["lr_scale"].to_dict()
    assert chosen == {"ip": 2.0, "sp": 0.5}


def test_a_tie_in_validation_accuracy_goes_to_the_scale_nearest_one():
    val = {("sp", 0.5): [0.8], ("sp", 1.0): [0.8], ("sp", 2.0): [0.8]}
    test = {k: [0.5] for k in val}
    assert best_scale(_lr_runs(val, test)) == {("snip", "sp"): 1.0}


def test_controls_table_pairs_shuffled_runs_with_their_main_runs():
    summary = pd.DataFrame([{"method": m, "repr": r, "seed": s, "test_acc": 0.5 + s / 10, "sparsity": 0.98}
                            for m in ("snip", "synflow", "dense") for r in ("sp", "ip") for s in (0, 1, 2)])
    shuffle = [{"method": "snip", "repr": r, "seed": s, "test_acc": 0.4, "sparsity": 0.98, "moved_share": 0.97}
               for r in ("sp", "ip") for s in (0, 1)]
    lr = [{"method": "snip", "repr": "sp", "seed": 0, "lr_scale": 2.0, "val_acc": 0.7, "test_acc": 0.6}]
    table = controls_table(shuffle, lr, summary)
    sh = table[table["control"] == "shuffle"]
    assert len(sh) == 8 and set(sh["method"]) == {"snip"} and set(sh["seed"]) == {0, 1}
    assert sh.groupby("shuffled").size().to_dict() == {False: 4, True: 4}
    assert (table[table["control"] == "lr"]["lr_scale"] == 2.0).all()
    assert controls_table([], [], summary).empty


def _shuffle_table(own_gain: float, shuffled_gain: float, seeds=range(4)) -> pd.DataFrame:
    rows = []
    for s in seeds:
        wiggle = 0.001 * ((s * 7) % 3 - 1)
        for shuffled, gain in ((False, own_gain), (True, shuffled_gain)):
            rows.append({"control": "shuffle", "method": "snip", "repr": "sp", "seed": s, "shuffled": shuffled,
                         "test_acc": 0.80 + wiggle, "sparsity": 0.98})
            rows.append({"control": "shuffle", "method": "snip", "repr": "ip", "seed": s, "shuffled": shuffled,
                         "test_acc": 0.80 + gain + 2 * wiggle, "sparsity": 0.98})
    return pd.DataFrame(rows)


def _evidence(controls: pd.DataFrame):
    from analysis import tables as T
    from analysis.evidence import Evidence
    summary = pd.DataFrame([{"method": m, "repr": r, "seed": s, "sparsity": 0.98, "test_acc": 0.8}
                            for m in ("dense", "snip") for r in ("sp", "ip") for s in range(4)])
    return Evidence.from_tables(T.Tables.from_frames(summary=summary, controls=controls))


def test_k1_follows_the_shuffled_pairs_not_the_own_masks():
    from analysis.claims.controls import claim_k1
    survives = claim_k1(_evidence(_shuffle_table(0.03, 0.03)))
    assert survives.verdict == "supported" and survives.parts[0].label == "snip"
    # IP ahead with its own masks, behind once they are shuffled: the advantage does not survive
    gone = claim_k1(_evidence(_shuffle_table(0.03, -0.03)))
    assert gone.verdict == "not supported"
    assert "shuffled − own masks" in gone.summary


def test_k2_compares_each_representation_at_its_validation_choice():
    from analysis.claims.controls import claim_k2
    rows = []
    for s in range(4):
        w = 0.001 * ((s * 7) % 3 - 1)
        # at x1 IP leads; SP's validation accuracy picks x2, where SP beats IP's best
        for repr_, scale, acc in (("sp", 1.0, 0.78), ("sp", 2.0, 0.85), ("ip", 1.0, 0.82), ("ip", 2.0, 0.70)):
            rows.append({"control": "lr", "method": "snip", "repr": repr_, "seed": s, "lr_scale": scale,
                         "val_acc": acc + w, "test_acc": acc + 2 * w, "sparsity": 0.98, "shuffled": False})
    result = claim_k2(_evidence(pd.DataFrame(rows)))
    assert result.verdict == "not supported"
    assert "SP at ×2 vs IP at ×1" in result.parts[0].note


def test_controls_without_runs_are_not_tested():
    from analysis.claims.controls import claim_k1, claim_k2
    empty = _evidence(pd.DataFrame(columns=["control", "method", "repr", "seed"]))
    assert claim_k1(empty).verdict == claim_k2(empty).verdict == "not tested here"


def test_the_learning_rate_grid_grows_beyond_a_chosen_edge_and_stops():
    from pipeline.controls import grid_growth

    def rows(best: dict[str, float], scales):
        return [{"method": "snip", "repr": r, "seed": s, "lr_scale": x, "val_acc": 0.9 - abs(x - best[r]) / 100}
                for r in best for s in (0, 1) for x in scales]

    grown = {"low": 0, "high": 0}
    scales = [0.5, 1.0, 2.0]
    assert grid_growth(rows({"sp": 1.0, "ip": 1.0}, scales), scales, grown, 2) == []   # both inside
    assert grid_growth(rows({"sp": 2.0, "ip": 1.0}, scales), scales, grown, 2) == [4.0]   # SP at the top
    scales = [0.5, 1.0, 2.0, 4.0]
    assert grid_growth(rows({"sp": 4.0, "ip": 0.5}, scales), scales, grown, 2) == [0.25, 8.0]
    assert grown == {"low": 1, "high": 2}
    scales = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    # the top edge grew twice: it is reported as an edge, never grown further
    assert grid_growth(rows({"sp": 8.0, "ip": 1.0}, scales), scales, grown, 2) == []
