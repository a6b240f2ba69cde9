//! WebSocket through the mesh: an echo across both hops (the upgrade travels as HTTP/1.1
//! and the two upgraded connections are spliced end to end), and a failed upgrade.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use weft_tests::discovery::Ep;
use weft_tests::mesh::{Mesh, NODE_B};
use weft_tests::proxy::metric;

#[tokio::test]
async fn websocket_echo_through_both_hops() {
    let mesh = Mesh::start().await;
    let (ws_addr, server) = weft_tests::backend::ws_echo(NODE_B).await;
    mesh.publish(&[("world", vec![mesh.on_b(ws_addr)])]).await;

    let stream = TcpStream::connect(mesh.a.outbound).await.unwrap();
    let (mut ws, rsp) = tokio_tungstenite::client_async("ws://world/chat", stream)
        .await
        .unwrap();
    assert_eq!(rsp.status(), 101);
    for i in 0..3 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    let big = vec![7u8; 200_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &big[..]
    );
    ws.close(None).await.unwrap();
    server.await.unwrap();
}

/// An upgrade's connection is the client's own, so a failed one is answered, never
/// retried: a retry would go without the client's side of the upgrade.
#[tokio::test]
async fn a_failed_upgrade_is_answered_and_not_retried() {
    let mesh = Mesh::start().await;
    // A port nothing listens on any more: every connect to it is refused.
    let refusing = TcpListener::bind(format!("{NODE_B}:0"))
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    mesh.publish(&[("world", vec![Ep::direct(refusing)])]).await;

    let stream = TcpStream::connect(mesh.a.outbound).await.unwrap();
    let err = tokio_tungstenite::client_async("ws://world/chat", stream)
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(rsp) = err else {
        panic!("expected an HTTP answer, got {err:?}");
    };
    assert_eq!(rsp.status(), 502);
    assert_eq!(rsp.headers()["weft-error"], "connect refused");
    let text = mesh.a.metrics().await;
    let attempts = format!(
        "weft_attempts_total{{direction=\"outbound\",service=\"world\",endpoint=\"{refusing}\",classification=\"failure\"}}"
    );
    assert_eq!(metric(&text, &attempts), Some(1.0), "{text}");
    let retries = "weft_retries_total{direction=\"outbound\",service=\"world\"}";
    assert_eq!(metric(&text, retries).unwrap_or(0.0), 0.0, "{text}");
}
