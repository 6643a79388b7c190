"""The scripted pick-and-place expert: a phase machine in pure JAX, decided with jnp.where on observations.

Phases, in order:
  0 APPROACH  move above the cube (APPROACH_HEIGHT over its centre), gripper open
  1 DESCEND   move to the grasp point (GRASP_OFFSET below the cube's centre), gripper open
  2 CLOSE     hold still, gripper closed, for CLOSE_STEPS control steps
  3 LIFT      raise the cube to CARRY_HEIGHT straight up, gripper closed
  4 CARRY     move above the place target at CARRY_HEIGHT, gripper closed
  5 LOWER     lower the cube until it rests on the place target, gripper closed
  6 OPEN      hold still, gripper open, for OPEN_STEPS control steps
  7 RETREAT   move up to CARRY_HEIGHT above the place target, gripper open (stays here)
A moving phase ends when the end effector is within REACHED (m) of its waypoint. If the cube leaves the
gripper during LIFT, CARRY or LOWER (farther than DROPPED from the end effector), the expert starts over
at APPROACH.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

APPROACH, DESCEND, CLOSE, LIFT, CARRY, LOWER, OPEN, RETREAT = range(8)

APPROACH_HEIGHT = 0.10  # m above the cube's centre
GRASP_OFFSET = 0.005  # m: the grasp point lies this far below the cube's centre (pads reach lower)
CARRY_HEIGHT = 0.15  # m above the table for lifting and carrying
REACHED = 0.01  # m: waypoint tolerance
DROPPED = 0.05  # m: the cube counts as lost when its centre is this far from the end effector
CLOSE_STEPS = 10  # control steps to close the gripper (0.2 s at 50 Hz)
OPEN_STEPS = 6  # control steps to open it
GAIN = 10.0  # action per metre of error (saturates at 1, i.e. at 0.1 m of error)


def init(key=None, obs=None, params=None) -> tuple[jax.Array, jax.Array]:
    """(phase, steps spent in it); the key, first observation and params are not needed."""
    return jnp.int32(APPROACH), jnp.int32(0)


def act(state, ee_pos, object_pos, place_pos):
    """One step of the expert: (action (4,), next state). place_pos is where the cube's centre should rest."""
    phase, timer = state
    up = jnp.array([0.0, 0.0, 1.0])
    lift_point = jnp.concatenate([object_pos[:2], jnp.array([CARRY_HEIGHT])])
    above_place = jnp.concatenate([place_pos[:2], jnp.array([CARRY_HEIGHT])])
    waypoints = jnp.stack(
        [
            object_pos + APPROACH_HEIGHT * up,  # APPROACH
            object_pos - GRASP_OFFSET * up,  # DESCEND
            ee_pos,  # CLOSE: hold
            lift_point,  # LIFT
            above_place,  # CARRY
            place_pos - GRASP_OFFSET * up,  # LOWER: the cube's centre onto the place target
            ee_pos,  # OPEN: hold
            above_place,  # RETREAT
        ]
    )
    target = waypoints[phase]
    closed = (phase >= CLOSE) & (phase <= LOWER)
    gripper = jnp.where(closed, -1.0, 1.0)
    move = jnp.clip((target - ee_pos) * GAIN, -1.0, 1.0)

    reached = jnp.linalg.norm(target - ee_pos) < REACHED
    timed_out = jnp.where(phase == CLOSE, timer >= CLOSE_STEPS, timer >= OPEN_STEPS)
    holding_phase = (phase == CLOSE) | (phase == OPEN)
    advance = jnp.where(holding_phase, timed_out, reached) & (phase < RETREAT)
    dropped = (phase >= LIFT) & (phase <= LOWER) & (jnp.linalg.norm(object_pos - ee_pos) > DROPPED)
    next_phase = jnp.where(dropped, APPROACH, jnp.where(advance, phase + 1, phase)).astype(jnp.int32)
    next_timer = jnp.where(next_phase == phase, timer + 1, 0).astype(jnp.int32)
    action = jnp.concatenate([move, gripper[None]]).astype(ee_pos.dtype)
    return action, (next_phase, next_timer)
