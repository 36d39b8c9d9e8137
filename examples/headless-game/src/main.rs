//! A headless Bevy game: two teams of units move, collide and fight on a
//! square arena until one team is gone or the tick limit is reached. No
//! window, no GPU, no network: it runs anywhere and exits with a summary.
//!
//! Usage: headless-game [TICKS] [UNITS_PER_TEAM]
//!        headless-game live [UNITS_PER_TEAM]
//!
//! `live` plays at 60 frames a second until stopped, with a heartbeat line
//! each second, like a game one edits while it runs
//! (`cargo dyndev watch --hot -- live`).

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;

const ARENA: f32 = 100.0;
const REACH: f32 = 2.5;

#[derive(States, Default, Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    #[default]
    Playing,
    Over,
}

#[derive(Component, Clone, Copy, PartialEq, Eq, Debug)]
enum Team {
    Red,
    Blue,
}

#[derive(Component)]
struct Velocity(Vec2);

#[derive(Component)]
struct Health(i32);

#[derive(Resource)]
struct Settings {
    ticks: u32,
    units: u32,
    live: bool,
}

#[derive(Resource, Default)]
struct Tick(u32);

/// A small deterministic generator so every run plays the same game.
#[derive(Resource)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn main() -> AppExit {
    let mut args = std::env::args().skip(1).peekable();
    let live = args.next_if(|a| a == "live").is_some();
    let ticks = if live {
        u32::MAX
    } else {
        args.next().and_then(|a| a.parse().ok()).unwrap_or(400)
    };
    let units = args.next().and_then(|a| a.parse().ok()).unwrap_or(120);

    let frame = if live {
        Duration::from_secs_f64(1.0 / 60.0)
    } else {
        Duration::ZERO
    };
    App::new()
        .add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(frame)),
            StatesPlugin,
            TransformPlugin,
        ))
        .init_state::<Phase>()
        .insert_resource(Settings { ticks, units, live })
        .insert_resource(Rng(0x9e37_79b9_7f4a_7c15))
        .init_resource::<Tick>()
        .add_systems(Startup, spawn_teams)
        .add_systems(
            Update,
            (advance, bounce, fight, bury, referee, heartbeat)
                .chain()
                .run_if(in_state(Phase::Playing)),
        )
        .add_systems(OnEnter(Phase::Over), report)
        .run()
}

fn spawn_teams(mut commands: Commands, settings: Res<Settings>, mut rng: ResMut<Rng>) {
    for team in [Team::Red, Team::Blue] {
        let side = if team == Team::Red { -1.0 } else { 1.0 };
        for _ in 0..settings.units {
            let x = side * (10.0 + rng.next() * (ARENA / 2.0 - 10.0));
            let y = (rng.next() - 0.5) * ARENA;
            let heading = Vec2::new(-side, rng.next() - 0.5).normalize();
            commands.spawn((
                team,
                Transform::from_xyz(x, y, 0.0),
                Velocity(heading * (0.5 + rng.next())),
                Health(100),
            ));
        }
    }
}

fn advance(mut tick: ResMut<Tick>, mut movers: Query<(&mut Transform, &Velocity)>) {
    tick.0 += 1;
    for (mut transform, velocity) in &mut movers {
        transform.translation += velocity.0.extend(0.0);
    }
}

fn bounce(mut movers: Query<(&mut Transform, &mut Velocity)>) {
    let half = ARENA / 2.0;
    for (mut transform, mut velocity) in &mut movers {
        let p = &mut transform.translation;
        if p.x.abs() > half {
            velocity.0.x = -velocity.0.x;
            p.x = p.x.clamp(-half, half);
        }
        if p.y.abs() > half {
            velocity.0.y = -velocity.0.y;
            p.y = p.y.clamp(-half, half);
        }
    }
}

fn fight(mut units: Query<(Entity, &Team, &Transform, &mut Health)>) {
    let snapshot: Vec<(Entity, Team, Vec2)> = units
        .iter()
        .map(|(e, team, t, _)| (e, *team, t.translation.truncate()))
        .collect();
    for (entity, team, transform, mut health) in &mut units {
        let here = transform.translation.truncate();
        let hits = snapshot
            .iter()
            .filter(|(other, other_team, there)| {
                *other != entity && other_team != team && here.distance(*there) < REACH
            })
            .count() as i32;
        health.0 -= hits * 7;
    }
}

fn bury(mut commands: Commands, units: Query<(Entity, &Health)>) {
    for (entity, health) in &units {
        if health.0 <= 0 {
            commands.entity(entity).despawn();
        }
    }
}

fn referee(
    tick: Res<Tick>,
    settings: Res<Settings>,
    teams: Query<&Team>,
    mut next: ResMut<NextState<Phase>>,
) {
    let red = teams.iter().filter(|t| **t == Team::Red).count();
    let blue = teams.iter().filter(|t| **t == Team::Blue).count();
    let wiped = red == 0 || blue == 0;
    if (wiped && !settings.live) || tick.0 >= settings.ticks {
        next.set(Phase::Over);
    }
}

/// In `live` mode, a line each second: the frame and who is left.
fn heartbeat(tick: Res<Tick>, settings: Res<Settings>, teams: Query<&Team>) {
    if !settings.live || tick.0 % 60 != 0 {
        return;
    }
    let red = teams.iter().filter(|t| **t == Team::Red).count();
    let blue = teams.iter().filter(|t| **t == Team::Blue).count();
    println!("frame {}: red {red} units, blue {blue} units", tick.0);
}

fn report(tick: Res<Tick>, teams: Query<(&Team, &Health)>, mut exit: MessageWriter<AppExit>) {
    let (mut red, mut blue, mut red_hp, mut blue_hp) = (0, 0, 0, 0);
    for (team, health) in &teams {
        match team {
            Team::Red => (red += 1, red_hp += health.0),
            Team::Blue => (blue += 1, blue_hp += health.0),
        };
    }
    let winner = match (red_hp, blue_hp) {
        (r, b) if r > b => "red wins",
        (r, b) if b > r => "blue wins",
        _ => "draw",
    };
    println!("tick {}: red {red} units ({red_hp} hp), blue {blue} units ({blue_hp} hp): {winner}", tick.0);
    exit.write(AppExit::Success);
}
