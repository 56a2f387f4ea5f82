//! Latency to the tenth of a millisecond. tokio's timer rounds every deadline up to the next
//! millisecond tick and fires it when a busy runtime next looks, which added ~1.5 ms to a
//! 20 ms latency and made the sandbox slower than the latency it claims (wrk measured 92% of
//! `connections / latency`). One thread that sleeps until the earliest deadline is exact to
//! the kernel's timer slack (~50 µs).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;

type Waiter = (Instant, u64, oneshot::Sender<()>);

pub struct Delays {
    tx: mpsc::Sender<Waiter>,
    next: std::sync::atomic::AtomicU64,
}

impl Delays {
    /// Starts the timer thread; it ends when this is dropped and every waiter has fired.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("sandbox-latency".into())
            .spawn(move || run(rx))
            .expect("the sandbox's latency thread starts");
        Delays {
            tx,
            next: Default::default(),
        }
    }

    /// Resolves at `deadline` (at once if it has passed).
    pub async fn until(&self, deadline: Instant) {
        if deadline <= Instant::now() {
            return;
        }
        let (done, fired) = oneshot::channel();
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.tx.send((deadline, seq, done));
        match sent {
            // A dropped sender (the thread is gone) also ends the wait.
            Ok(()) => {
                let _ = fired.await;
            }
            Err(_) => tokio::time::sleep_until(deadline.into()).await,
        }
    }
}

fn run(rx: mpsc::Receiver<Waiter>) {
    // Linux lets a sleeping thread wake up to 50 µs late to batch wake-ups; this one should not.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1u64);
    }
    // Earliest deadline first; the sequence number breaks ties without comparing senders.
    let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut senders: std::collections::HashMap<u64, oneshot::Sender<()>> = Default::default();
    loop {
        let now = Instant::now();
        while let Some(Reverse((at, seq))) = heap.peek().copied() {
            if at > now {
                break;
            }
            heap.pop();
            if let Some(s) = senders.remove(&seq) {
                let _ = s.send(());
            }
        }
        let received = match heap.peek() {
            Some(Reverse((at, _))) => match rx.recv_timeout(at.saturating_duration_since(now)) {
                Ok(w) => Some(w),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(w) => Some(w),
                Err(_) => return,
            },
        };
        if let Some((at, seq, sender)) = received {
            heap.push(Reverse((at, seq)));
            senders.insert(seq, sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_not_early() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let delays = Delays::start();
        rt.block_on(async {
            let start = Instant::now();
            let waits = [30u64, 10, 20].map(|ms| {
                let d = &delays;
                async move {
                    d.until(start + Duration::from_millis(ms)).await;
                    (ms, start.elapsed())
                }
            });
            let [a, b, c] = waits;
            let (a, b, c) = tokio::join!(a, b, c);
            for (ms, took) in [a, b, c] {
                assert!(
                    took >= Duration::from_millis(ms),
                    "{ms} ms fired at {took:?}"
                );
            }
        });
    }
}
