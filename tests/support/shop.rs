//! A shop for the sync tests: a real terminal syncing with the real hub through a
//! fault-injecting proxy of its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::daemon::{Client, Daemon};
use super::eventually;
use super::hub::{secret_file, Hub};
use super::proxy::Proxy;

pub const PIN: &str = "1234";

/// A terminal syncing with the hub through a proxy of its own.
pub struct Shop {
    pub id: &'static str,
    pub dir: PathBuf,
    pub secret: PathBuf,
    pub proxy: Proxy,
    pub d: Daemon,
}

impl Shop {
    pub fn open(root: &Path, id: &'static str, hub: &Hub, secret: &Path) -> Shop {
        let proxy = Proxy::start(&hub.addr());
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let d = Shop::start(&dir, id, &proxy, secret, &[], &[]);
        Shop {
            id,
            dir,
            secret: secret.to_path_buf(),
            proxy,
            d,
        }
    }

    /// Starts terminal `id` syncing through `proxy`, with `extra` serve flags.
    pub fn start(dir: &Path, id: &str, proxy: &Proxy, secret: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let url = proxy.url();
        let secret = secret.display().to_string();
        let mut args = vec![
            "--terminal-id",
            id,
            "--upstream",
            url.as_str(),
            "--upstream-secret-file",
            secret.as_str(),
            "--sync-interval",
            "1",
        ];
        args.extend_from_slice(extra);
        Daemon::start_env(dir, &args, env)
    }

    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.d = Shop::start(&self.dir, self.id, &self.proxy, &self.secret, &[], env);
    }

    pub fn c(&self) -> Client {
        self.d.client()
    }

    pub fn health(&self) -> Value {
        self.c().get_json("/v1/health", 200)
    }

    /// Waits until everything this terminal made is acknowledged and a round has
    /// completed since `after`.
    pub fn wait_synced(&self, after: &str) {
        eventually(60, &format!("{} has synced", self.id), || {
            let h = self.health();
            let last = h["last_sync_at"].as_str().unwrap_or("");
            (h["outbox"] == 0 && last > after).then_some(())
        });
    }

    pub fn enrol(&self, card: &str, phone: &str) -> String {
        let body = json!({"card": card, "name": "Member", "phone": phone, "pin": PIN});
        let m = self.c().post_json("/v1/members", &body, &[], 201);
        m["member_id"].as_str().unwrap().to_string()
    }

    pub fn commit(&self, card: &str, key: &str, unit_price: i64, redeem: i64) -> Result<Value, Value> {
        let mut body = json!({"card": card, "lines": [{"sku": "tv", "category": "electronics", "qty": 1, "unit_price": unit_price}]});
        if redeem > 0 {
            body["redeem_points"] = json!(redeem);
            body["pin"] = json!(PIN);
        }
        let (status, text) = self
            .c()
            .post("/v1/checkout/commit", &body.to_string(), &[("Idempotency-Key", key)])
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        if status == 200 {
            Ok(v)
        } else {
            Err(v)
        }
    }

    /// The member's balance as this terminal sees it, once it knows the card.
    pub fn balance(&self, card: &str) -> Option<i64> {
        let (status, text) = self.c().get(&format!("/v1/cards/{card}")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        (status == 200).then(|| v["balance"].as_i64().unwrap())
    }
}

/// A hub and two terminals, T1 and T2, each through a proxy of its own.
pub fn chain(root: &Path) -> (Hub, Shop, Shop) {
    let (s1, s2) = (secret_file(root, "T1"), secret_file(root, "T2"));
    let hub = Hub::start(root, &[("T1", s1.as_path()), ("T2", s2.as_path())]);
    let t1 = Shop::open(root, "T1", &hub, &s1);
    let t2 = Shop::open(root, "T2", &hub, &s2);
    (hub, t1, t2)
}

/// When the shop last completed a round with the hub (RFC 3339, the shop's offset).
pub fn last_sync(shop: &Shop) -> String {
    shop.health()["last_sync_at"].as_str().unwrap_or("").to_string()
}

pub fn hub_member(hub: &Hub, id: &str) -> Value {
    hub.client().get_json(&format!("/v1/hub/members/{id}"), 200)
}
