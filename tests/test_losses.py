"""spac_loss against hand-computed values, the exact identities of docs/algorithm.md, and its gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from spac_hf.losses import spac_loss


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


# One example: policy and reference log-probs of (chosen, rejected, generated).
POLICY = (-10.0, -12.0, -9.0)
REF = (-11.0, -11.5, -8.0)
BETA = 0.5
# h = beta * (policy - ref)
H_CHOSEN, H_REJECTED, H_GENERATED = 0.5, -0.25, -0.5


def run(beta=BETA, **kwargs):
    tensors = [torch.tensor([v]) for v in (*POLICY, *REF)]
    return [x.item() for x in spac_loss(*tensors, beta=beta, **kwargs)]


@pytest.mark.parametrize("real, h_real", [("chosen", H_CHOSEN), ("rejected", H_REJECTED), ("average", 0.125)])
@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 3.0])
def test_hand_computed_values_sigmoid(real, h_real, lam):
    loss, pessimism, preference = run(lam=lam, real=real, smoothing="sigmoid")
    assert preference == pytest.approx(-logsig(H_CHOSEN - H_REJECTED))  # -log sigmoid(0.75)
    assert pessimism == pytest.approx(-logsig(h_real - H_GENERATED))
    assert loss == pytest.approx(pessimism + lam * preference)


@pytest.mark.parametrize("real, h_real", [("chosen", H_CHOSEN), ("rejected", H_REJECTED), ("average", 0.125)])
def test_hand_computed_values_linear(real, h_real):
    loss, pessimism, preference = run(lam=2.0, real=real, smoothing="linear")
    assert pessimism == pytest.approx(H_GENERATED - h_real)
    assert loss == pytest.approx(H_GENERATED - h_real - 2.0 * logsig(0.75))


def test_without_pessimism_is_lambda_times_dpo():
    loss, pessimism, preference = run(lam=2.0, pessimism=False)
    assert pessimism == 0.0
    assert loss == pytest.approx(2.0 * -logsig(0.75))
    tensors = [torch.tensor([v]) for v in (*POLICY, *REF)]
    tensors[2] = tensors[5] = None  # no generated response is needed
    assert spac_loss(*tensors, beta=BETA, lam=2.0, pessimism=False)[0].item() == pytest.approx(loss)


def test_spin_special_case_is_dpo_on_chosen_vs_generated():
    # lambda = 0, y' = chosen, smoothed: DPO's sigmoid loss on (y+, y_gen) with reference pi_t.
    g = torch.Generator().manual_seed(0)
    pc, pr, pg, rc, rr, rg = (torch.randn(16, generator=g) * 5 - 20 for _ in range(6))
    loss, _, _ = spac_loss(pc, pr, pg, rc, rr, rg, beta=0.1, lam=0.0, real="chosen")
    dpo = -F.logsigmoid(0.1 * ((pc - rc) - (pg - rg)))
    torch.testing.assert_close(loss, dpo)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
@pytest.mark.parametrize("real", ["chosen", "rejected", "average"])
def test_at_the_reference_the_smoothed_loss_is_one_plus_lambda_log_two(lam, real):
    logps = torch.randn(8) * 10 - 30
    same = [logps, logps - 1, logps + 2]
    loss, pessimism, preference = spac_loss(*same, *[x.clone() for x in same], lam=lam, real=real)
    torch.testing.assert_close(loss, torch.full((8,), (1 + lam) * math.log(2)))
    torch.testing.assert_close(pessimism, torch.full((8,), math.log(2)))


def test_gradients_reach_the_policy_only():
    policy = [torch.randn(4, requires_grad=True) for _ in range(3)]
    ref = [torch.randn(4, requires_grad=True) for _ in range(3)]
    loss, _, _ = spac_loss(*policy, *ref, beta=0.1, lam=1.0)
    loss.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy)
    assert all(r.grad is None for r in ref)


def test_gradient_direction():
    # The loss pushes the chosen response up and the self-play response down (the critic's pessimism).
    policy = [torch.zeros(1, requires_grad=True) for _ in range(3)]
    loss, _, _ = spac_loss(*policy, *[torch.zeros(1)] * 3, beta=0.1, lam=1.0, real="average")
    loss.sum().backward()
    chosen, rejected, generated = (p.grad.item() for p in policy)
    assert chosen < 0 < generated and rejected > chosen
    # At theta = pi_t: d/dh_gen = 1/2, d/dh_chosen = -1/4 (pessimism, via the average) - 1/2 (preference).
    assert generated == pytest.approx(0.1 * 0.5)
    assert chosen == pytest.approx(0.1 * (-0.25 - 0.5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lam": -0.1}, "`lam`"),
        ({"lam": float("nan")}, "`lam`"),
        ({"real": "best"}, "`real`"),
        ({"smoothing": "hinge"}, "`smoothing`"),
        ({"beta": 0.0}, "`beta`"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    tensors = [torch.zeros(2)] * 6
    with pytest.raises(ValueError, match=message):
        spac_loss(*tensors, **kwargs)
