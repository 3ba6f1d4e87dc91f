// A log4j2 application for tests/rotated_names.rs: numbered lines
// `j seq=N <padding>` for N in FROM..TO-1, spread over about SECONDS, at
// random moments from SEED, through whatever log4j2 configuration
// -Dlog4j2.configurationFile names (a RollingFileAppender there).
//
//   java -cp LOG4J_JARS:CLASSES App FROM TO SECONDS SEED
import java.util.Random;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

public class App {
    public static void main(String[] args) throws Exception {
        long from = Long.parseLong(args[0]);
        long to = Long.parseLong(args[1]);
        double seconds = Double.parseDouble(args[2]);
        Random rng = new Random(Long.parseLong(args[3]));
        Logger log = LogManager.getLogger(App.class);
        double meanMs = seconds * 1000.0 / Math.max(1, to - from);
        for (long seq = from; seq < to; seq++) {
            log.info(String.format("j seq=%08d %s", seq, "x".repeat(30 + rng.nextInt(90))));
            Thread.sleep((long) (rng.nextDouble() * 2 * meanMs));
        }
        // Waits for the rollover's compression to finish.
        LogManager.shutdown();
    }
}
