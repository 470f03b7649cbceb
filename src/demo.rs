//! The sample restaurant-search API (described by `specs/restaurants.yaml`), served on
//! loopback when `gateway.yaml` has a `demo:` section, so that a first run has a real REST
//! API behind the gateway. It is an ordinary HTTP server: the gateway reaches it over TCP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The API key the demo API expects in `X-API-Key` (`DEMO_API_KEY`, default `demo-key`).
pub fn api_key() -> String {
    std::env::var("DEMO_API_KEY").unwrap_or_else(|_| "demo-key".into())
}

struct Restaurant {
    id: &'static str,
    name: &'static str,
    cuisine: &'static str,
    city: &'static str,
    price_level: u8,
    rating: f64,
    menu: &'static [(&'static str, f64, bool)],
}

const RESTAURANTS: &[Restaurant] = &[
    Restaurant {
        id: "r-101",
        name: "Trattoria Lucia",
        cuisine: "italian",
        city: "Seattle",
        price_level: 2,
        rating: 4.6,
        menu: &[
            ("Margherita pizza", 16.0, true),
            ("Cacio e pepe", 19.5, true),
            ("Osso buco", 34.0, false),
        ],
    },
    Restaurant {
        id: "r-102",
        name: "Sakura Dori",
        cuisine: "japanese",
        city: "Seattle",
        price_level: 3,
        rating: 4.8,
        menu: &[
            ("Omakase (12 pieces)", 85.0, false),
            ("Chicken yakitori", 6.5, false),
            ("Agedashi tofu", 9.0, true),
        ],
    },
    Restaurant {
        id: "r-103",
        name: "Casa Oaxaca",
        cuisine: "mexican",
        city: "Portland",
        price_level: 1,
        rating: 4.4,
        menu: &[
            ("Mole negro", 21.0, false),
            ("Tlayuda", 14.0, true),
            ("Tacos al pastor", 12.0, false),
        ],
    },
    Restaurant {
        id: "r-104",
        name: "Le Petit Zinc",
        cuisine: "french",
        city: "Portland",
        price_level: 3,
        rating: 4.5,
        menu: &[
            ("Steak frites", 32.0, false),
            ("Ratatouille", 22.0, true),
            ("Crème brûlée", 10.0, true),
        ],
    },
    Restaurant {
        id: "r-105",
        name: "Spice Route",
        cuisine: "indian",
        city: "Seattle",
        price_level: 2,
        rating: 4.7,
        menu: &[
            ("Chana masala", 15.0, true),
            ("Lamb rogan josh", 24.0, false),
            ("Garlic naan", 4.5, true),
        ],
    },
    Restaurant {
        id: "r-106",
        name: "Green Fork",
        cuisine: "vegan",
        city: "San Francisco",
        price_level: 2,
        rating: 4.3,
        menu: &[("Jackfruit tacos", 15.0, true), ("Beet burger", 17.0, true)],
    },
];

fn restaurant_json(r: &Restaurant) -> Value {
    json!({
        "id": r.id, "name": r.name, "cuisine": r.cuisine, "city": r.city,
        "priceLevel": r.price_level, "rating": r.rating,
    })
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn problem(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, &json!({ "error": message }))
}

struct Demo {
    key: String,
    next_reservation: AtomicU64,
}

async fn handle(demo: &Demo, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        != Some(demo.key.as_str())
    {
        return problem(StatusCode::UNAUTHORIZED, "missing or wrong X-API-Key");
    }
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    match (request.method().clone(), segments.as_slice()) {
        (Method::GET, ["restaurants"]) => search(&query),
        (Method::GET, ["restaurants", id]) => match find(id) {
            Some(r) => reply(StatusCode::OK, &restaurant_json(r)),
            None => problem(
                StatusCode::NOT_FOUND,
                &format!("no restaurant with id {id}"),
            ),
        },
        (Method::GET, ["restaurants", id, "menu"]) => match find(id) {
            Some(r) => {
                let vegetarian_only =
                    form_pairs(&query).any(|(k, v)| k == "vegetarian" && v == "true");
                let items: Vec<Value> = r
                    .menu
                    .iter()
                    .filter(|(_, _, veg)| !vegetarian_only || *veg)
                    .map(|(name, price, veg)| json!({ "name": name, "price": price, "vegetarian": veg }))
                    .collect();
                reply(StatusCode::OK, &Value::Array(items))
            }
            None => problem(
                StatusCode::NOT_FOUND,
                &format!("no restaurant with id {id}"),
            ),
        },
        (Method::POST, ["restaurants", id, "reservations"]) => {
            let id = id.to_string();
            reserve(demo, &id, request).await
        }
        _ => problem(StatusCode::NOT_FOUND, "no such route"),
    }
}

fn find(id: &str) -> Option<&'static Restaurant> {
    RESTAURANTS.iter().find(|r| r.id == id)
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

fn search(query: &str) -> Response<Full<Bytes>> {
    let (mut cuisine, mut city, mut max_price, mut limit) = (None, None, None, 10usize);
    for (k, v) in form_pairs(query) {
        match k.as_str() {
            "cuisine" => cuisine = Some(v.to_ascii_lowercase()),
            "city" => city = Some(v.to_ascii_lowercase()),
            "maxPriceLevel" => match v.parse::<u8>() {
                Ok(n) => max_price = Some(n),
                Err(_) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "maxPriceLevel must be an integer from 1 to 4",
                    );
                }
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=50).contains(&n) => limit = n,
                _ => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "limit must be an integer from 1 to 50",
                    );
                }
            },
            _ => {}
        }
    }
    let found: Vec<Value> = RESTAURANTS
        .iter()
        .filter(|r| cuisine.as_deref().is_none_or(|c| r.cuisine == c))
        .filter(|r| {
            city.as_deref()
                .is_none_or(|c| r.city.to_ascii_lowercase() == c)
        })
        .filter(|r| max_price.is_none_or(|m| r.price_level <= m))
        .map(restaurant_json)
        .collect();
    let total = found.len();
    let results: Vec<Value> = found.into_iter().take(limit).collect();
    reply(
        StatusCode::OK,
        &json!({ "results": results, "total": total }),
    )
}

async fn reserve(demo: &Demo, id: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(restaurant) = find(id) else {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no restaurant with id {id}"),
        );
    };
    let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return problem(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "body must be JSON");
    };
    let (Some(name), Some(party), Some(time)) = (
        body["name"].as_str(),
        body["partySize"].as_u64(),
        body["time"].as_str(),
    ) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name, partySize and time are required",
        );
    };
    if !(1..=12).contains(&party) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "partySize must be from 1 to 12",
        );
    }
    let number = demo.next_reservation.fetch_add(1, Ordering::Relaxed);
    reply(
        StatusCode::CREATED,
        &json!({
            "id": format!("res-{number}"),
            "restaurantId": restaurant.id,
            "restaurantName": restaurant.name,
            "name": name,
            "partySize": party,
            "time": time,
            "notes": body.get("notes").cloned().unwrap_or(Value::Null),
            "status": "confirmed",
        }),
    )
}

/// Starts the demo API on `addr` in the background; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let demo = Arc::new(Demo {
        key: api_key(),
        next_reservation: AtomicU64::new(1),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let demo = demo.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let demo = demo.clone();
                    async move { Ok::<_, Infallible>(handle(&demo, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}
