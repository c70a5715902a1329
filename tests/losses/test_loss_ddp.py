"""Batch Dice under torch.distributed (2 CPU processes, gloo) against nnU-Net's DDP Dice."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from _references import require
from multitask_unet.losses import DiceCELoss, SoftDiceLoss

require("nnunetv2", reason="nnunetv2 is not installed (pip install nnunetv2)")

WORLD = 2
SHAPE = (2, 3, 4, 5, 3)  # per-rank (B, C, D, H, W)


def rank_inputs(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + rank)
    logits = 2 * torch.randn(SHAPE, generator=gen)
    target = torch.randint(0, SHAPE[1], (SHAPE[0], 1, *SHAPE[2:]), generator=gen)
    return logits, target


def _worker(rank: int, store: str, out: str) -> None:
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.utilities.helpers import softmax_helper_dim1

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        logits, target = rank_inputs(rank)
        ref = MemoryEfficientSoftDiceLoss(
            apply_nonlin=softmax_helper_dim1, batch_dice=True, do_bg=False, smooth=1e-5, ddp=True
        )
        results = {}
        for name, loss, kwargs in [
            ("nnunet", ref, {}),
            ("ours", SoftDiceLoss(batch_dice=True, ddp=True), {}),
            # rank 0 has no valid sample: the pooled Dice must still be the Dice of rank 1's
            ("valid", DiceCELoss(batch_dice=True, ddp=True, weight_ce=0), {"valid": None}),
        ]:
            x = logits.clone().requires_grad_(True)
            if "valid" in kwargs:
                kwargs = {"valid": torch.full((SHAPE[0],), rank == 1)}
            value = loss(x, target.float() if name == "nnunet" else target, **kwargs)
            value.backward()
            results[name] = (value.detach(), x.grad)
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not dist.is_available() or "fork" not in mp.get_all_start_methods(),
    reason="needs torch.distributed with gloo and the 'fork' start method (POSIX)",
)
def test_ddp_batch_dice_equals_nnunet(tmp_path):
    args = (str(tmp_path / "store"), str(tmp_path / "out"))
    mp.start_processes(_worker, args=args, nprocs=WORLD, start_method="fork")
    results = [torch.load(tmp_path / f"out.{r}") for r in range(WORLD)]
    for res in results:
        torch.testing.assert_close(res["ours"][0], res["nnunet"][0], rtol=0, atol=1e-6)
        torch.testing.assert_close(res["ours"][1], res["nnunet"][1], rtol=0, atol=1e-6)

    # Pooling over ranks equals one process holding the whole batch.
    logits = torch.cat([rank_inputs(r)[0] for r in range(WORLD)])
    target = torch.cat([rank_inputs(r)[1] for r in range(WORLD)])
    single = SoftDiceLoss(batch_dice=True)(logits, target)
    torch.testing.assert_close(results[0]["ours"][0], single, rtol=0, atol=1e-6)

    # Only rank 1 has valid samples: every rank gets the batch Dice of rank 1's samples.
    only_rank1 = SoftDiceLoss(batch_dice=True)(*rank_inputs(1))
    for res in results:
        torch.testing.assert_close(res["valid"][0], only_rank1, rtol=0, atol=1e-6)
    assert torch.all(results[0]["valid"][1] == 0)
    assert torch.any(results[1]["valid"][1] != 0)
