//! Pacing of new outbound streams on mplex connections.
//!
//! js-libp2p's mplex (12.x, the muxer of the TypeScript system's nodes) aborts
//! a connection whose remote opens more than 5 streams within one second (a
//! fixed window that starts at the first new stream), and then leaves the TCP
//! connection open until its connection monitor notices. Every protocol counts
//! — kad lookups, identify, ping, messages, handlers' raw streams — so the
//! pacing sits in the muxer, below all of them: at most [`OPENS`] new streams
//! in any [`WINDOW`], the rest wait in the swarm's queue. A waiting open still
//! runs against its protocol's negotiation timeout (10 s by default), so a
//! burst of more than about 33 opens on one connection fails its excess with
//! a timeout instead of crossing the peer's limit. The
//! window is longer than the peer's second, so a peer whose event loop stalls
//! for up to half a second and then reads a backlog still sees no more than
//! 5 in any of its windows. yamux connections are not paced.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use tokio::time::{Instant, Sleep};

/// New outbound streams allowed per [`WINDOW`] on one mplex connection.
pub(crate) const OPENS: usize = 5;
/// The sliding window [`OPENS`] applies to.
pub(crate) const WINDOW: Duration = Duration::from_millis(1500);

/// A muxer whose outbound stream opens are paced.
pub(crate) struct Paced<M> {
    inner: M,
    /// When the last (at most [`OPENS`]) streams were opened.
    opened: VecDeque<Instant>,
    /// Wakes the opener when the window has room again.
    wait: Option<Pin<Box<Sleep>>>,
}

impl<M> Paced<M> {
    pub(crate) fn new(inner: M) -> Self {
        Self {
            inner,
            opened: VecDeque::with_capacity(OPENS),
            wait: None,
        }
    }

    /// Ready when one more stream fits in the window.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let now = Instant::now();
            while self
                .opened
                .front()
                .is_some_and(|first| now.duration_since(*first) >= WINDOW)
            {
                self.opened.pop_front();
            }
            let Some(first) = self.opened.front().copied() else {
                self.wait = None;
                return Poll::Ready(());
            };
            if self.opened.len() < OPENS {
                self.wait = None;
                return Poll::Ready(());
            }
            let deadline = first + WINDOW;
            let wait = self
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if wait.deadline() != deadline {
                wait.as_mut().reset(deadline);
            }
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<M> StreamMuxer for Paced<M>
where
    M: StreamMuxer + Unpin,
{
    type Substream = M::Substream;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_inbound(cx)
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        if this.poll_room(cx).is_pending() {
            return Poll::Pending;
        }
        let opened = Pin::new(&mut this.inner).poll_outbound(cx);
        if matches!(opened, Poll::Ready(Ok(_))) {
            this.opened.push_back(Instant::now());
        }
        opened
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A muxer that opens streams instantly.
    struct Instant0;

    impl StreamMuxer for Instant0 {
        type Substream = futures::io::Cursor<Vec<u8>>;
        type Error = std::io::Error;

        fn poll_inbound(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            Poll::Pending
        }

        fn poll_outbound(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            Poll::Ready(Ok(futures::io::Cursor::new(Vec::new())))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_ever_holds_more_than_the_allowed_opens() {
        let mut muxer = Paced::new(Instant0);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..17 {
            futures::future::poll_fn(|cx| Pin::new(&mut muxer).poll_outbound(cx))
                .await
                .expect("open");
            at.push(Instant::now().duration_since(start));
        }
        // The first OPENS go at once, then one per window slot.
        assert!(at.iter().take(OPENS).all(|t| t.is_zero()), "{at:?}");
        for (i, t) in at.iter().enumerate().skip(OPENS) {
            let earlier = at.get(i - OPENS).copied().unwrap_or_default();
            assert!(
                *t - earlier >= WINDOW,
                "open {i} at {t:?} after {earlier:?}"
            );
        }
        // Nothing waits longer than it must: 17 opens take three windows.
        assert_eq!(at.last().copied(), Some(WINDOW * 3));
    }
}
