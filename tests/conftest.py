"""Fixtures shared by several test files."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second thread only adds synchronisation, which on a busy shared machine costs minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def step_each_player():
    """A function that steps each of a model's players once, as training does, and asserts that a step
    changes only that player's own parameters; returns the names of the parameters each one changed."""
    from autoencoders.training.module import make_optimizer

    def step_each(model, x, y=None) -> dict[str, set[str]]:
        players = model.players()
        names_of = {id(parameter): name for name, parameter in model.named_parameters()}
        changes = {}
        for player_name, player in players.items():
            own = {names_of[id(parameter)] for parameter in player.parameters()}
            before = {key: value.detach().clone() for key, value in model.named_parameters()}
            optimizer = make_optimizer(player.parameters(), 1e-2, player.betas, 0.0)
            state = {}  # one batch's shared state, as in training
            for other in players.values():  # the earlier players run first and may share their results through it
                if other is player:
                    break
                other.loss(x, y, step=0, state=state)
            loss = player.loss(x, y, step=0, state=state)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            changed = {key for key, value in model.named_parameters() if not torch.equal(value, before[key])}
            assert changed, f"player {player_name} changed nothing"
            assert changed <= own, f"player {player_name} changed {sorted(changed - own)}"
            changes[player_name] = changed
        return changes

    return step_each
