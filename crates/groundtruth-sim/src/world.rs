//! The simulated world: regions, units, routes, accounts, devices, networks.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::event::{self, Attrs, Ev, NONE};
use crate::geo::{self, gauss, Route, RouteKind};
use crate::scenario::{ip_prefix, Scenario};
use crate::track::{Fix, Mode, Phone};

pub(crate) struct Region {
    pub code: String,
    pub lat: f64,
    pub lon: f64,
    pub ip: (u8, u8),
}

pub(crate) struct Unit {
    pub region: u32,
    pub office: (f64, f64),
    pub net: u32,
    pub ip: u32,
    pub duty_point: u32,
    /// river, forest, road
    pub routes: [u32; 3],
}

pub(crate) struct Account {
    pub id: String,
    pub region: u32,
    pub label: &'static str,
    pub scenario: &'static str,
    pub seen: bool,
}

pub(crate) struct Device {
    pub id: String,
    pub model: &'static str,
    pub os: &'static str,
    pub ver: u8,
    pub integrity: &'static str,
    pub shares_location: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Office,
    Patrol {
        route: u32,
        mode: Mode,
        app: &'static str,
    },
    Registry {
        registry: &'static str,
    },
    Grid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fake {
    Dog,
    Straight,
    Teleport,
    Replay,
}

impl Fake {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fake::Dog => "dog_leg",
            Fake::Straight => "straight_line",
            Fake::Teleport => "teleport",
            Fake::Replay => "replay",
        }
    }
}

pub(crate) struct Official {
    pub account: u32,
    pub unit: u32,
    pub device: u32,
    pub home: (f64, f64),
    pub home_net: u32,
    pub home_ip: u32,
    pub cell_ip: u32,
    pub role: Role,
    pub phone: Phone,
    /// Chance per day of genuine activity on the own phone (1 normally).
    pub own_activity: f64,
    pub checks_in_self: bool,
    pub office_study: bool,
    pub fake: Option<Fake>,
    pub keys: Vec<u64>,
    pub report_factor: f64,
    pub inflating: bool,
    pub churn_keys: Vec<u64>,
    pub census: bool,
    pub help_desk: bool,
    pub referrer: u32,
    /// Extra accounts sharing this official's phone (family).
    pub family: Vec<u32>,
}

pub(crate) struct Resident {
    pub account: u32,
    pub region: u32,
    pub device: u32,
    pub home: (f64, f64),
    pub net: u32,
    pub ip: u32,
    pub active_prob: f64,
    pub since_day: u32,
    pub evening_only: bool,
}

pub(crate) struct Farm {
    #[allow(dead_code)]
    pub operator: u32,
    /// (official index of the bound account, device, position)
    pub phones: Vec<(u32, u32, (f64, f64))>,
    pub net: u32,
    pub ip: u32,
}

pub(crate) struct BulkOp {
    pub operator: u32,
    /// official indices, the operator first
    pub accounts: Vec<u32>,
    pub spot: (f64, f64),
    pub acc: f32,
}

pub(crate) struct RegFarm {
    pub referrer: u32,
    pub devices: Vec<u32>,
    pub ips: Vec<u32>,
    pub claimed_region: u32,
}

pub(crate) struct StoredTrack {
    pub day: u32,
    pub official: u32,
    pub route: u32,
    pub fixes: Vec<Fix>,
}

pub(crate) struct World {
    pub seed: u64,
    pub regions: Vec<Region>,
    pub units: Vec<Unit>,
    pub routes: Vec<Route>,
    pub duty_points: Vec<String>,
    pub accounts: Vec<Account>,
    pub devices: Vec<Device>,
    pub nets: Vec<String>,
    pub referrers: Vec<String>,
    pub officials: Vec<Official>,
    pub residents: Vec<Resident>,
    pub farms: Vec<Farm>,
    pub bulk: Vec<BulkOp>,
    pub regfarms: Vec<RegFarm>,
    pub bad_week_unit: Option<u32>,
    pub stored: Vec<StoredTrack>,
    pub patrols: Vec<crate::PatrolLabel>,
    pub mobile_ip: (u8, u8),
    pub session_ctr: u64,
    pub patrol_ctr: u64,
    pub seq: u64,
}

const PHONES: &[(&str, &[&str])] = &[
    ("HUAWEI Mate 60", &["HarmonyOS 4.2", "HarmonyOS 4.0"]),
    ("HUAWEI nova 12", &["HarmonyOS 4.2"]),
    ("HUAWEI Pura 70", &["HarmonyOS 4.2", "HarmonyOS 5.0"]),
    ("Honor X50", &["Android 14", "Android 13"]),
    ("Xiaomi 14", &["Android 14", "Android 15"]),
    ("Redmi Note 12", &["Android 13", "Android 14"]),
    ("Redmi K70", &["Android 14"]),
    ("OPPO Reno11", &["Android 14"]),
    ("OPPO A2", &["Android 13"]),
    ("vivo X100", &["Android 14", "Android 15"]),
    ("vivo Y36", &["Android 13"]),
    ("iPhone 13", &["iOS 17.6", "iOS 18.1"]),
    ("iPhone 15", &["iOS 18.1", "iOS 17.5"]),
];

pub(crate) const APP_VERSIONS: &[&str] = &["3.2.1", "3.2.0", "3.1.8", "3.3.0"];

fn ip_in(p: (u8, u8), rng: &mut ChaCha8Rng) -> u32 {
    (p.0 as u32) << 24
        | (p.1 as u32) << 16
        | rng.random_range(0..=255u32) << 8
        | rng.random_range(1..=254u32)
}

impl World {
    pub(crate) fn new_account(
        &mut self,
        id: String,
        region: u32,
        label: &'static str,
        scenario: &'static str,
    ) -> u32 {
        self.accounts.push(Account {
            id,
            region,
            label,
            scenario,
            seen: false,
        });
        (self.accounts.len() - 1) as u32
    }

    pub(crate) fn new_device(
        &mut self,
        rng: &mut ChaCha8Rng,
        integrity: Option<&'static str>,
    ) -> u32 {
        let (model, oses) = PHONES[rng.random_range(0..PHONES.len())];
        let os = oses[rng.random_range(0..oses.len())];
        let r: f64 = rng.random();
        let integrity = integrity.unwrap_or(if r < 0.55 {
            "strong"
        } else if r < 0.96 {
            "device"
        } else {
            "basic"
        });
        let id = {
            let mut b = Vec::with_capacity(17);
            b.push(b'd');
            event::push_hex(&mut b, rng.random::<u64>(), 16);
            String::from_utf8(b).unwrap_or_default()
        };
        self.devices.push(Device {
            id,
            model,
            os,
            ver: rng.random_range(0..APP_VERSIONS.len()) as u8,
            integrity,
            shares_location: rng.random::<f64>() < 0.5,
        });
        (self.devices.len() - 1) as u32
    }

    pub(crate) fn new_net(&mut self, rng: &mut ChaCha8Rng, wifi: bool) -> u32 {
        let id = if wifi {
            let mut b = b"wifi-".to_vec();
            event::push_hex(&mut b, rng.random::<u64>(), 12);
            String::from_utf8(b).unwrap_or_default()
        } else {
            format!(
                "cell-460-00-{}-{}",
                rng.random_range(9000..9999),
                rng.random_range(10000..65000)
            )
        };
        self.nets.push(id);
        (self.nets.len() - 1) as u32
    }

    pub(crate) fn region_ip(&self, region: u32, rng: &mut ChaCha8Rng) -> u32 {
        ip_in(self.regions[region as usize].ip, rng)
    }

    pub(crate) fn mobile_ip(&self, rng: &mut ChaCha8Rng) -> u32 {
        ip_in(self.mobile_ip, rng)
    }

    pub(crate) fn new_resident_id(&self, rng: &mut ChaCha8Rng) -> String {
        let mut b = b"r".to_vec();
        event::push_hex(&mut b, rng.random::<u64>(), 12);
        String::from_utf8(b).unwrap_or_default()
    }

    fn new_unit(&mut self, rng: &mut ChaCha8Rng, region: u32) -> u32 {
        let r = &self.regions[region as usize];
        let (clat, clon) = (r.lat, r.lon);
        let code = r.code.clone();
        let office = geo::offset(clat, clon, gauss(rng, 2500.0), gauss(rng, 2500.0));
        let net = self.new_net(rng, true);
        let ip = self.region_ip(region, rng);
        let u = self.units.len() as u32;
        self.duty_points.push(format!("dp-{code}-{:03}", u));
        let duty_point = (self.duty_points.len() - 1) as u32;
        let mut routes = [0u32; 3];
        for (i, kind) in [RouteKind::River, RouteKind::Forest, RouteKind::Road]
            .into_iter()
            .enumerate()
        {
            let d = rng.random_range(1000.0..4000.0);
            let a: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            let origin = geo::offset(office.0, office.1, d * a.cos(), d * a.sin());
            let cell = self.new_net(rng, false);
            let prefix = ["rv", "fr", "rd"][i];
            let id = format!("{prefix}-{code}-{u:03}");
            self.routes
                .push(Route::generate(rng, id, kind, origin, cell));
            routes[i] = (self.routes.len() - 1) as u32;
        }
        self.units.push(Unit {
            region,
            office,
            net,
            ip,
            duty_point,
            routes,
        });
        u
    }

    fn new_official(
        &mut self,
        rng: &mut ChaCha8Rng,
        sc: &Scenario,
        unit: u32,
        role: Role,
        label: &'static str,
        scenario: &'static str,
    ) -> u32 {
        let region = self.units[unit as usize].region;
        let n = self.officials.len();
        let id = format!("o{}{:05}", self.regions[region as usize].code, n);
        let account = self.new_account(id, region, label, scenario);
        let device = self.new_device(rng, None);
        let office = self.units[unit as usize].office;
        let d = rng.random_range(800.0..6000.0);
        let a: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let home = geo::offset(office.0, office.1, d * a.cos(), d * a.sin());
        let home_net = self.new_net(rng, true);
        let home_ip = self.region_ip(region, rng);
        let cell_ip = self.mobile_ip(rng);
        let fi = sc.honest.fix_interval_s;
        let phone = Phone {
            fix_interval_s: if fi[1] > fi[0] {
                rng.random_range(fi[0]..=fi[1])
            } else {
                fi[0]
            },
            reports_speed: rng.random::<f64>() < 0.85,
            acc_base: rng.random_range(5.0..14.0),
            poor_gps: false,
        };
        self.officials.push(Official {
            account,
            unit,
            device,
            home,
            home_net,
            home_ip,
            cell_ip,
            role,
            phone,
            own_activity: 1.0,
            checks_in_self: true,
            office_study: false,
            fake: None,
            keys: Vec::new(),
            report_factor: 1.0,
            inflating: false,
            churn_keys: Vec::new(),
            census: false,
            help_desk: false,
            referrer: NONE,
            family: Vec::new(),
        });
        n as u32
    }

    fn random_role(&self, rng: &mut ChaCha8Rng, sc: &Scenario, unit: u32) -> Role {
        let p = &sc.population;
        let r: f64 = rng.random();
        if r < p.patrol_share {
            let river = rng.random::<f64>() < p.river_share;
            let m = sc.honest.mode_shares;
            let x = rng.random::<f64>() * m.iter().sum::<f64>();
            let mode = if x < m[0] {
                Mode::Walk
            } else if x < m[0] + m[1] {
                Mode::Bike
            } else {
                Mode::Car
            };
            let routes = self.units[unit as usize].routes;
            let (route, app) = if !river && mode != Mode::Car {
                (routes[1], "forest-guard")
            } else if mode == Mode::Car {
                (
                    routes[2],
                    if river { "river-chief" } else { "forest-guard" },
                )
            } else {
                (routes[0], "river-chief")
            };
            Role::Patrol { route, mode, app }
        } else if r < p.patrol_share + p.registry_share {
            Role::Registry {
                registry: pick_registry(rng),
            }
        } else if r < p.patrol_share + p.registry_share + p.grid_share {
            Role::Grid
        } else {
            Role::Office
        }
    }

    fn walk_patrol_role(&self, unit: u32, river: bool) -> Role {
        let routes = self.units[unit as usize].routes;
        if river {
            Role::Patrol {
                route: routes[0],
                mode: Mode::Walk,
                app: "river-chief",
            }
        } else {
            Role::Patrol {
                route: routes[1],
                mode: Mode::Walk,
                app: "forest-guard",
            }
        }
    }

    pub(crate) fn build(sc: &Scenario, rng: &mut ChaCha8Rng) -> World {
        let mut w = World {
            seed: sc.seed,
            regions: sc
                .population
                .regions
                .iter()
                .map(|r| Region {
                    code: r.code.clone(),
                    lat: r.lat,
                    lon: r.lon,
                    ip: ip_prefix(&r.ip_prefix),
                })
                .collect(),
            units: Vec::new(),
            routes: Vec::new(),
            duty_points: Vec::new(),
            accounts: Vec::new(),
            devices: Vec::new(),
            nets: Vec::new(),
            referrers: std::iter::once("organic".to_string())
                .chain(
                    sc.population
                        .regions
                        .iter()
                        .map(|r| format!("cm-{}", r.code)),
                )
                .collect(),
            officials: Vec::new(),
            residents: Vec::new(),
            farms: Vec::new(),
            bulk: Vec::new(),
            regfarms: Vec::new(),
            bad_week_unit: None,
            stored: Vec::new(),
            patrols: Vec::new(),
            mobile_ip: ip_prefix(&sc.population.mobile_ip_prefix),
            session_ctr: 0,
            patrol_ctr: 0,
            seq: 0,
        };
        let nreg = w.regions.len() as u32;
        let mut normal_units = Vec::new();
        for r in 0..nreg {
            for _ in 0..sc.population.units_per_region {
                normal_units.push(w.new_unit(rng, r));
            }
        }
        // Dedicated units first, then the normal officials who fill the
        // normal units, some of whom become specials (the order of the
        // draws is the world: keep it).
        w.add_office_wifi_study(sc, rng);
        w.add_phone_farms(sc, rng, nreg);
        w.add_inflating_units(sc, rng, nreg);
        w.add_bad_week(sc, rng, nreg);
        w.add_bulk_check_ins(sc, rng, nreg, &normal_units);
        let mut pool = w.fill_normal_units(sc, rng, &normal_units);
        w.convert_confounders(sc, rng, &mut pool);
        w.convert_fraud(sc, rng, &mut pool);
        w.give_registry_pools(rng);
        for _ in 0..sc.population.residents {
            let region = rng.random_range(0..nreg);
            w.add_resident(
                rng,
                region,
                0,
                "honest",
                "resident",
                sc.population.resident_active_prob,
            );
        }
        w.add_registration_farms(sc, rng, nreg);
        w
    }

    /// Office workers who study on the office Wi-Fi (a unit of their own).
    fn add_office_wifi_study(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng) {
        let k = &sc.confounders;
        if k.office_wifi_study > 0 {
            let u = self.new_unit(rng, 0);
            for _ in 0..k.office_wifi_study {
                let role = if rng.random::<f64>() < 0.15 {
                    Role::Grid
                } else {
                    Role::Office
                };
                let o = self.new_official(rng, sc, u, role, "honest", "office_wifi_study");
                self.officials[o as usize].office_study = true;
            }
        }
    }

    /// Phone farms: an operator, phones on one network carrying colleagues'
    /// accounts.
    fn add_phone_farms(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng, nreg: u32) {
        let f = &sc.fraud;
        if f.phone_farm.enabled {
            for _ in 0..f.phone_farm.farms {
                let region = rng.random_range(0..nreg);
                let u = self.new_unit(rng, region);
                let operator =
                    self.new_official(rng, sc, u, Role::Office, "phone_farm", "farm_operator");
                let net = self.new_net(rng, true);
                let ip = self.region_ip(region, rng);
                let spot = self.officials[operator as usize].home;
                let model = PHONES[rng.random_range(0..PHONES.len())];
                let mut phones = Vec::new();
                // (device, position, accounts it still takes)
                let mut phone: Option<(u32, (f64, f64), u32)> = None;
                for _ in 0..f.phone_farm.phones {
                    let o =
                        self.new_official(rng, sc, u, Role::Office, "phone_farm", "farm_account");
                    let camo = rng.random::<f64>() < f.phone_farm.camouflage_share;
                    self.officials[o as usize].own_activity = if camo { 0.5 } else { 0.0 };
                    let (dev, pos, left) = match phone {
                        Some(p) if p.2 > 0 => p,
                        _ => {
                            let integ = if rng.random::<f64>() < 0.7 {
                                "device"
                            } else {
                                "basic"
                            };
                            let dev = self.new_device(rng, Some(integ));
                            self.devices[dev as usize].model = model.0;
                            self.devices[dev as usize].os = model.1[0];
                            self.devices[dev as usize].ver = 0;
                            self.devices[dev as usize].shares_location = true;
                            let pos = geo::offset(
                                spot.0,
                                spot.1,
                                rng.random_range(-1.5..1.5),
                                rng.random_range(-1.5..1.5),
                            );
                            // Drawn only when phones carry several, so the
                            // worlds of existing scenarios stay as they were.
                            let carries = match f.phone_farm.accounts_per_phone {
                                0 | 1 => 1,
                                k => rng.random_range(1..=k),
                            };
                            (dev, pos, carries)
                        }
                    };
                    phone = Some((dev, pos, left - 1));
                    phones.push((o, dev, pos));
                }
                self.farms.push(Farm {
                    operator,
                    phones,
                    net,
                    ip,
                });
            }
        }
    }

    /// Units whose grid workers inflate their reports.
    fn add_inflating_units(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng, nreg: u32) {
        let f = &sc.fraud;
        if f.report_inflation.enabled {
            for _ in 0..f.report_inflation.units {
                let region = rng.random_range(0..nreg);
                let u = self.new_unit(rng, region);
                for _ in 0..f.report_inflation.workers {
                    let o = self.new_official(
                        rng,
                        sc,
                        u,
                        Role::Grid,
                        "report_inflation",
                        "inflating_worker",
                    );
                    self.officials[o as usize].inflating = true;
                }
            }
        }
    }

    /// A unit with a genuinely bad week (the honest look-alike of
    /// inflation).
    fn add_bad_week(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng, nreg: u32) {
        let k = &sc.confounders;
        if k.bad_week {
            let region = rng.random_range(0..nreg);
            let u = self.new_unit(rng, region);
            self.bad_week_unit = Some(u);
            for _ in 0..6 {
                let o = self.new_official(rng, sc, u, Role::Grid, "honest", "bad_week");
                self.officials[o as usize].report_factor = k.bad_week_factor;
            }
        }
    }

    /// Bulk check-in operators and the accounts they clock in.
    fn add_bulk_check_ins(
        &mut self,
        sc: &Scenario,
        rng: &mut ChaCha8Rng,
        nreg: u32,
        normal_units: &[u32],
    ) {
        let f = &sc.fraud;
        if f.bulk_check_in.enabled {
            for _ in 0..f.bulk_check_in.operators {
                let region = rng.random_range(0..nreg);
                let u = self.new_unit(rng, region);
                let operator = self.new_official(
                    rng,
                    sc,
                    u,
                    Role::Office,
                    "bulk_check_in",
                    "checkin_operator",
                );
                self.officials[operator as usize].checks_in_self = false;
                let office = self.units[u as usize].office;
                let spot = geo::offset(
                    office.0,
                    office.1,
                    rng.random_range(-300.0..300.0),
                    rng.random_range(-300.0..300.0),
                );
                let spot = ((spot.0 * 1e6).round() / 1e6, (spot.1 * 1e6).round() / 1e6);
                let mut accounts = vec![operator];
                for _ in 0..f.bulk_check_in.accounts {
                    let far = rng.random::<f64>() < f.bulk_check_in.far_share;
                    let unit = if far {
                        normal_units[rng.random_range(0..normal_units.len())]
                    } else {
                        u
                    };
                    let o = self.new_official(
                        rng,
                        sc,
                        unit,
                        Role::Office,
                        "bulk_check_in",
                        "checkin_account",
                    );
                    self.officials[o as usize].checks_in_self = false;
                    accounts.push(o);
                }
                self.bulk.push(BulkOp {
                    operator,
                    accounts,
                    spot,
                    acc: [10.0f32, 15.0, 20.0][rng.random_range(0..3)],
                });
            }
        }
    }

    /// The normal officials of the normal units; returns them shuffled: the
    /// pool specials are converted from.
    fn fill_normal_units(
        &mut self,
        sc: &Scenario,
        rng: &mut ChaCha8Rng,
        normal_units: &[u32],
    ) -> Vec<u32> {
        let dedicated = self.officials.len() as u32;
        let n_normal = sc.population.officials.saturating_sub(dedicated);
        for _ in 0..n_normal {
            let u = normal_units[rng.random_range(0..normal_units.len())];
            let role = self.random_role(rng, sc, u);
            self.new_official(rng, sc, u, role, "honest", "routine");
        }
        let mut pool: Vec<u32> = (dedicated..self.officials.len() as u32).collect();
        pool.shuffle(rng);
        pool
    }

    /// Honest officials converted to confounders: shared family phones,
    /// help desks, a census clean-up, boats, poor GPS, site surveys, trains.
    fn convert_confounders(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng, pool: &mut Vec<u32>) {
        let k = &sc.confounders;
        for _ in 0..k.family_shared_phone {
            let Some(o) = pool.pop() else { break };
            let acct = self.officials[o as usize].account;
            self.accounts[acct as usize].scenario = "family_shared_phone";
            let dev = self.officials[o as usize].device;
            let home = self.officials[o as usize].home;
            let net = self.officials[o as usize].home_net;
            let ip = self.officials[o as usize].home_ip;
            let region = self.accounts[acct as usize].region;
            for _ in 0..rng.random_range(1..=2) {
                let id = self.new_resident_id(rng);
                let a = self.new_account(id, region, "honest", "family_shared_phone");
                self.officials[o as usize].family.push(a);
                self.residents.push(Resident {
                    account: a,
                    region,
                    device: dev,
                    home,
                    net,
                    ip,
                    active_prob: 0.85,
                    since_day: 0,
                    evening_only: true,
                });
            }
        }
        for i in 0..k.help_desk_workers {
            let Some(o) = pool.pop() else { break };
            let ofc = &mut self.officials[o as usize];
            ofc.help_desk = true;
            ofc.role = Role::Grid;
            let acct = ofc.account;
            self.accounts[acct as usize].scenario = "help_desk_registration";
            self.referrers.push(format!("staff-{:04}", 1000 + i));
            self.officials[o as usize].referrer = (self.referrers.len() - 1) as u32;
        }
        if k.census_cleanup {
            if let Some(o) = pool.pop() {
                let ofc = &mut self.officials[o as usize];
                ofc.census = true;
                ofc.role = Role::Registry {
                    registry: "population",
                };
                self.accounts[ofc.account as usize].scenario = "census_cleanup";
            }
        }
        for _ in 0..k.boat_patrollers {
            let Some(o) = pool.pop() else { break };
            let unit = self.officials[o as usize].unit;
            let route = self.units[unit as usize].routes[0];
            let ofc = &mut self.officials[o as usize];
            ofc.role = Role::Patrol {
                route,
                mode: Mode::Boat,
                app: "river-chief",
            };
            ofc.phone.acc_base = rng.random_range(3.0..7.0);
            self.accounts[ofc.account as usize].scenario = "boat_patrol";
        }
        for _ in 0..k.poor_gps_patrollers {
            let Some(o) = pool.pop() else { break };
            let unit = self.officials[o as usize].unit;
            let role = self.walk_patrol_role(unit, rng.random::<bool>());
            let ofc = &mut self.officials[o as usize];
            ofc.role = role;
            ofc.phone.poor_gps = true;
            ofc.phone.acc_base = rng.random_range(55.0..90.0);
            self.accounts[ofc.account as usize].scenario = "poor_gps";
        }
        for (mode, n, scenario) in [
            (Mode::Site, k.site_surveyors, "site_survey"),
            (Mode::Train, k.train_riders, "train_rider"),
        ] {
            for _ in 0..n {
                let Some(o) = pool.pop() else { break };
                let unit = self.officials[o as usize].unit;
                let Role::Patrol { route, app, .. } =
                    self.walk_patrol_role(unit, rng.random::<bool>())
                else {
                    continue;
                };
                let ofc = &mut self.officials[o as usize];
                ofc.role = Role::Patrol { route, mode, app };
                self.accounts[ofc.account as usize].scenario = scenario;
            }
        }
    }

    /// Officials converted to fraud: record churners and fake patrols.
    fn convert_fraud(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng, pool: &mut Vec<u32>) {
        let f = &sc.fraud;
        if f.record_churn.enabled {
            for _ in 0..f.record_churn.workers {
                let Some(o) = pool.pop() else { break };
                let keys: Vec<u64> = (0..f.record_churn.churn_keys)
                    .map(|_| rng.random())
                    .collect();
                let ofc = &mut self.officials[o as usize];
                ofc.role = Role::Registry {
                    registry: "population",
                };
                ofc.churn_keys = keys;
                self.accounts[ofc.account as usize].label = "record_churn";
                self.accounts[ofc.account as usize].scenario = "churn_worker";
            }
        }
        if f.non_human_track.enabled {
            let t = &f.non_human_track;
            let kinds = [
                (Fake::Dog, t.dog_leg),
                (Fake::Straight, t.straight_line),
                (Fake::Teleport, t.teleport),
                (Fake::Replay, t.replay),
            ];
            for (fake, n) in kinds {
                for _ in 0..n {
                    let Some(o) = pool.pop() else { break };
                    let unit = self.officials[o as usize].unit;
                    let role = self.walk_patrol_role(unit, rng.random::<bool>());
                    let ofc = &mut self.officials[o as usize];
                    ofc.role = role;
                    ofc.fake = Some(fake);
                    self.accounts[ofc.account as usize].label = "non_human_track";
                    self.accounts[ofc.account as usize].scenario = fake.name();
                }
            }
        }
    }

    /// Registry workers get their record pools.
    fn give_registry_pools(&mut self, rng: &mut ChaCha8Rng) {
        for o in self.officials.iter_mut() {
            if matches!(o.role, Role::Registry { .. }) {
                o.keys = (0..rng.random_range(200..400))
                    .map(|_| rng.random())
                    .collect();
            }
        }
    }

    /// Registration farms: a referrer, devices, foreign IPs.
    fn add_registration_farms(&mut self, sc: &Scenario, rng: &mut ChaCha8Rng, nreg: u32) {
        let f = &sc.fraud;
        if f.registration_farm.enabled {
            let rf = &f.registration_farm;
            let foreign = ip_prefix(&rf.ip_prefix);
            for i in 0..rf.farms {
                self.referrers
                    .push(format!("PR{:05}", 31000 + i * 17 + rng.random_range(0..17)));
                let referrer = (self.referrers.len() - 1) as u32;
                let devices = (0..rf.devices)
                    .map(|_| {
                        let r: f64 = rng.random();
                        self.new_device(
                            rng,
                            Some(if r < 0.4 {
                                "virtual"
                            } else if r < 0.8 {
                                "basic"
                            } else {
                                "device"
                            }),
                        )
                    })
                    .collect();
                let ips = (0..rf.ips).map(|_| ip_in(foreign, rng)).collect();
                self.regfarms.push(RegFarm {
                    referrer,
                    devices,
                    ips,
                    claimed_region: rng.random_range(0..nreg),
                });
            }
        }
    }

    pub(crate) fn add_resident(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: u32,
        since_day: u32,
        label: &'static str,
        scenario: &'static str,
        active_prob: f64,
    ) -> u32 {
        let id = self.new_resident_id(rng);
        let account = self.new_account(id, region, label, scenario);
        let device = self.new_device(rng, None);
        let r = &self.regions[region as usize];
        let home = geo::offset(r.lat, r.lon, gauss(rng, 3000.0), gauss(rng, 3000.0));
        let net = self.new_net(rng, true);
        let ip = self.region_ip(region, rng);
        self.residents.push(Resident {
            account,
            region,
            device,
            home,
            net,
            ip,
            active_prob,
            since_day,
            evening_only: false,
        });
        (self.residents.len() - 1) as u32
    }

    /// Encodes one event as a single JSON line (no newline) into `buf`.
    pub(crate) fn encode(&self, ev: &Ev, n: u64, day_strs: &[String], buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(b"{\"event_id\":\"sim-");
        event::push_u64(buf, self.seed);
        buf.push(b'-');
        event::push_u64(buf, n);
        buf.extend_from_slice(b"\",\"ts\":");
        event::push_ts(buf, ev.ts);
        event::push_key(buf, "app_id");
        event::push_str(buf, ev.app);
        event::push_key(buf, "account_id");
        event::push_str(buf, &self.accounts[ev.account as usize].id);
        event::push_key(buf, "kind");
        event::push_str(buf, ev.kind.as_str());
        if ev.region != NONE {
            event::push_key(buf, "region");
            event::push_str(buf, &self.regions[ev.region as usize].code);
        }
        if ev.device != NONE {
            let d = &self.devices[ev.device as usize];
            event::push_key(buf, "device_id");
            event::push_str(buf, &d.id);
            event::push_key(buf, "device_model");
            event::push_str(buf, d.model);
            event::push_key(buf, "os_version");
            event::push_str(buf, d.os);
            event::push_key(buf, "app_version");
            event::push_str(buf, APP_VERSIONS[d.ver as usize]);
            event::push_key(buf, "integrity");
            event::push_str(buf, ev.integrity.unwrap_or(d.integrity));
        }
        if ev.ip != 0 {
            event::push_key(buf, "ip");
            event::push_ip(buf, ev.ip);
        }
        if ev.net != NONE {
            event::push_key(buf, "network_id");
            event::push_str(buf, &self.nets[ev.net as usize]);
        }
        if let Some((lat, lon)) = ev.pos {
            event::push_key(buf, "lat");
            event::push_fixed(buf, lat, 6);
            event::push_key(buf, "lon");
            event::push_fixed(buf, lon, 6);
        }
        if ev.acc.is_finite() {
            event::push_key(buf, "accuracy_m");
            event::push_fixed(buf, ev.acc as f64, 1);
        }
        if ev.speed.is_finite() {
            event::push_key(buf, "speed_mps");
            event::push_fixed(buf, ev.speed as f64, 2);
        }
        if ev.mock {
            buf.extend_from_slice(b",\"mock_location\":true");
        }
        event::push_key(buf, "module");
        event::push_str(buf, ev.module);
        if ev.session != 0 {
            buf.extend_from_slice(b",\"session_id\":\"s");
            event::push_hex(buf, self.seed & 0xffff, 4);
            buf.push(b'-');
            event::push_u64(buf, ev.session);
            buf.push(b'"');
        }
        self.encode_attrs(ev, day_strs, buf);
        buf.push(b'}');
    }

    /// The event's `attrs` object, if it has one (with its leading comma).
    fn encode_attrs(&self, ev: &Ev, day_strs: &[String], buf: &mut Vec<u8>) {
        match ev.attrs {
            Attrs::None => {}
            Attrs::Duration(d) => {
                buf.extend_from_slice(b",\"attrs\":{\"duration_s\":");
                event::push_u64(buf, d as u64);
                buf.push(b'}');
            }
            Attrs::CheckIn { point } => {
                buf.extend_from_slice(b",\"attrs\":{\"point_id\":");
                event::push_str(buf, &self.duty_points[point as usize]);
                buf.push(b'}');
            }
            Attrs::Patrol { patrol, route } => {
                buf.extend_from_slice(b",\"attrs\":{\"patrol_id\":");
                event::push_str(buf, &self.patrols[patrol as usize].patrol_id);
                buf.extend_from_slice(b",\"route_id\":");
                event::push_str(buf, &self.routes[route as usize].id);
                buf.push(b'}');
            }
            Attrs::Track { patrol } => {
                buf.extend_from_slice(b",\"attrs\":{\"patrol_id\":");
                event::push_str(buf, &self.patrols[patrol as usize].patrol_id);
                buf.push(b'}');
            }
            Attrs::Task {
                task,
                day,
                duration,
            } => {
                buf.extend_from_slice(b",\"attrs\":{\"task_id\":\"t");
                buf.extend_from_slice(day_strs[day as usize].as_bytes());
                buf.push(b'-');
                event::push_u64(buf, task as u64);
                buf.extend_from_slice(b"\",\"duration_s\":");
                event::push_u64(buf, duration as u64);
                buf.push(b'}');
            }
            Attrs::Interaction { action, target } => {
                buf.extend_from_slice(b",\"attrs\":{\"action\":");
                event::push_str(buf, action);
                buf.extend_from_slice(b",\"target_id\":\"art-");
                event::push_u64(buf, target as u64);
                buf.extend_from_slice(b"\"}");
            }
            Attrs::Register {
                referrer,
                claimed_region,
            } => {
                buf.extend_from_slice(b",\"attrs\":{\"referrer\":");
                event::push_str(buf, &self.referrers[referrer as usize]);
                buf.extend_from_slice(b",\"claimed_region\":");
                event::push_str(buf, &self.regions[claimed_region as usize].code);
                buf.push(b'}');
            }
            Attrs::Record {
                registry,
                key,
                changed,
            } => {
                buf.extend_from_slice(b",\"attrs\":{\"registry\":");
                event::push_str(buf, registry);
                buf.extend_from_slice(b",\"record_key\":\"");
                event::push_hex(buf, key, 16);
                buf.push(b'"');
                if let Some(c) = changed {
                    buf.extend_from_slice(b",\"changed_fields\":");
                    event::push_u64(buf, c as u64);
                }
                buf.push(b'}');
            }
            Attrs::Report {
                registry,
                category,
                text,
            } => {
                buf.extend_from_slice(b",\"attrs\":{\"registry\":");
                event::push_str(buf, registry);
                buf.extend_from_slice(b",\"category\":");
                event::push_str(buf, category);
                if let Some((t, p, n)) = text {
                    buf.extend_from_slice(b",\"summary\":");
                    event::push_str(buf, &crate::text::summary(t, p, n, category));
                }
                buf.push(b'}');
            }
        }
    }
}

pub(crate) fn pick_registry(rng: &mut ChaCha8Rng) -> &'static str {
    let r: f64 = rng.random();
    if r < 0.6 {
        "population"
    } else if r < 0.8 {
        "children_in_difficulty"
    } else {
        "disputes"
    }
}
