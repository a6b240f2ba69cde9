//! Opens TCP connections upstream with a timeout. Where mutual TLS arrives, it wraps the
//! stream here, so the pools above stay unaware of it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Error;
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
pub struct Connector {
    pub timeout: Duration,
}

impl Connector {
    pub async fn connect(&self, endpoint: SocketAddr) -> Result<TcpStream, Error> {
        let stream = match tokio::time::timeout(self.timeout, TcpStream::connect(endpoint)).await {
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    endpoint,
                    timeout: self.timeout,
                })
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Error::ConnectRefused { endpoint })
            }
            Ok(Err(e)) => {
                return Err(Error::ConnectFailed {
                    endpoint,
                    cause: e.to_string(),
                })
            }
            Ok(Ok(s)) => s,
        };
        // Small requests and responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
